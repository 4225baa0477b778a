"""How much a router's plain-LoRA export loses when weakly weighted skills are left out (`min_weight`).

    python benchmarks/export_pruning.py [--router ROUTER_DIR] [--task TASK] [--min-weights 0 0.05]

The default router is the NLI hybrid that `study_label_tasks.py` trains over the released skills.

Exports the trained router with its gates averaged over 256 training prompts, in full and at each `--min-weights`,
and scores every export on all test records by option log-likelihood. Writes benchmarks/results/export_pruning.json.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import torch


RESULTS = Path(__file__).resolve().parent / "results"
STUDY_HYBRID = "runs/study-released/k=all/seed=42/icd10cm_excludes_nli/adapters/hybrid@lr5e-3"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="icd10cm_excludes_nli")
    parser.add_argument("--router", default=STUDY_HYBRID)
    parser.add_argument("--min-weights", type=float, nargs="+", default=[0.0, 0.05])
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from peft import PeftModel

    from samdkif_peft.base_model import load_base_model
    from samdkif_peft.data import load_task
    from samdkif_peft.data.templates import format_prompt
    from samdkif_peft.evaluation.likelihood import evaluate_options
    from samdkif_peft.tuner.export import export_lora
    from samdkif_peft.utils import cpu_description

    data = load_task(args.task)
    prompts = [format_prompt(r) for r in data["train"].select(range(min(256, len(data["train"]))))]
    model, tokenizer = load_base_model(None)
    model = PeftModel.from_pretrained(model, args.router)
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for weight in args.min_weights:
            folder = os.path.join(tmp, str(weight))
            summary = export_lora(model, folder, prompts=prompts, tokenizer=tokenizer, min_weight=weight)
            lora = PeftModel.from_pretrained(load_base_model(None)[0], folder).eval()
            start = time.perf_counter()
            report = evaluate_options(lora, tokenizer, args.task, data)["report"]
            rows[str(weight)] = {
                "max_rank": max(summary["rank"].values()),
                "mean_rank": sum(summary["rank"].values()) / len(summary["rank"]),
                "max_dropped_weight": max(summary["dropped_weight"].values()),
                "accuracy": report["accuracy"], "macro_f1": report["macro_f1"], "intervals": report["intervals"],
                "score_seconds": time.perf_counter() - start,
            }  # fmt: skip
            print(weight, rows[str(weight)], flush=True)
    out = {"task": args.task, "router": args.router, "prompts": len(prompts), "cpu": cpu_description(),
           "threads": args.threads, "min_weight": rows}  # fmt: skip
    (RESULTS / "export_pruning.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
