"""How far an adapter moved its base model: relative update size ‖ΔW‖_F / ‖W0‖_F per adapted module.

    python benchmarks/adapter_update_size.py ADAPTER [ADAPTER ...] [--json benchmarks/results/adapter_update_size.json]

Diagnoses the AdaLoRA skill recipe (issue "Medical value (2/2)"): AdaLoRA starts its singular values `lora_E` at
zero and its `lora_A` / `lora_B` at N(0, 0.02), so in a short run ΔW = B diag(E) A stays far smaller than a LoRA's
(A Kaiming-uniform, B from zero, no product of two small factors). Every adapter is read through the skill router's
own normaliser (scale folded into B), so LoRA, rsLoRA and pruned AdaLoRA are measured alike.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import torch
from safetensors.torch import load_file

from samdkif_peft.skills.factors import load_skill_factors, read_adapter_config
from samdkif_peft.skills.spec import parse_skill_reference, resolve_skill


def base_weights(base: str) -> dict[str, torch.Tensor]:
    weights = {}
    for file in sorted(Path(base).glob("*.safetensors")):
        weights.update(load_file(str(file)))
    return weights


def update_size(adapter: str, base: dict[str, torch.Tensor]) -> dict[str, float]:
    factors = load_skill_factors(resolve_skill(parse_skill_reference(Path(adapter).name, adapter)))
    ratios = []
    for module, (A, B) in factors.modules.items():
        w0 = base[f"{module}.weight"].float()
        ratios.append(float(torch.linalg.norm(B.float() @ A.float()) / torch.linalg.norm(w0)))
    config = read_adapter_config(adapter)
    results = {}
    results_file = Path(adapter) / "train_results.json"
    if results_file.is_file():
        results = json.loads(results_file.read_text())
    return {
        "peft_type": config.get("peft_type"),
        "mean_relative_update": statistics.mean(ratios),
        "max_relative_update": max(ratios),
        "modules": len(ratios),
        "steps": results.get("global_step"),
        "eval_loss": results.get("eval_loss"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("adapters", nargs="+")
    parser.add_argument("--base-model", default=None, help="default: the prepared SmolLM2")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    from samdkif_peft.base_model import prepare_base_model

    base = base_weights(args.base_model or prepare_base_model())
    rows = {}
    for adapter in args.adapters:
        rows[adapter] = row = update_size(adapter, base)
        print(f"{adapter:60s} {row['peft_type']:8s} steps={row['steps']} "
              f"mean ‖ΔW‖/‖W0‖={row['mean_relative_update']:.2e} max={row['max_relative_update']:.2e} "
              f"eval_loss={row['eval_loss']}")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
