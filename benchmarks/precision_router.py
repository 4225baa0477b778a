"""How much the skill path's dtype moves real outputs, against what bf16 rounding of the model already moves them.

The real SmolLM2 with the twelve shipped skills, on real test prompts of a task. Three ways to run it:
- `fp32 reference`: the whole model and the skills in float32;
- `bf16, fp32 skills`: the bf16 model with float32 skill factors (peft's `autocast_adapter_dtype=True` default);
- `bf16, bf16 skills`: the bf16 model with bf16 skill factors (`autocast_adapter_dtype=False`, the fast path).
For every prompt and position it compares the logits (absolute differences) and the next-token argmax, and the task's
answers by option log-likelihood on all test records.

    python benchmarks/precision_router.py                              # static uniform router over release/skills
    python benchmarks/precision_router.py --router ROUTER_DIR --task icd10cm_excludes_nli

Writes benchmarks/results/router_precision.json.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from pathlib import Path

import torch


RESULTS = Path(__file__).resolve().parent / "results"
SETTINGS = {  # name -> (model dtype, autocast_adapter_dtype)
    "fp32 reference": (torch.float32, True),
    "bf16, fp32 skills": (torch.bfloat16, True),
    "bf16, bf16 skills": (torch.bfloat16, False),
}


def build(router: str | None, skills: dict[str, str], dtype: torch.dtype, autocast: bool):
    from peft import PeftModel, get_peft_model

    from samdkif_peft import SkillRouterConfig
    from samdkif_peft.base_model import load_base_model

    model, tokenizer = load_base_model(dtype=dtype)
    if router is None:
        config = SkillRouterConfig(skills=skills, router="static", task_type="CAUSAL_LM")
        model = get_peft_model(model, config, autocast_adapter_dtype=autocast)
    else:
        model = PeftModel.from_pretrained(model, router, autocast_adapter_dtype=autocast)
    return model.eval(), tokenizer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--router", default=None, help="a trained router folder (default: static, uniform gates)")
    parser.add_argument("--skills-dir", default="release/skills")
    parser.add_argument("--task", default="icd10cm_excludes_nli")
    parser.add_argument("--prompts", type=int, default=32, help="test prompts whose logits are compared")
    parser.add_argument("--limit", type=int, default=None, help="test records scored by option log-likelihood")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=str(RESULTS / "router_precision.json"))
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)

    from samdkif_peft.data import load_task
    from samdkif_peft.data.templates import format_prompt
    from samdkif_peft.evaluation.likelihood import evaluate_options
    from samdkif_peft.skills.shipped import parse_skill_arguments

    skills = parse_skill_arguments([args.skills_dir])  # a folder of skill folders, named like `--skills` does
    data = load_task(args.task)
    prompts = [format_prompt(r) for r in data["test"].select(range(args.prompts))]

    logits, answers, seconds, metrics = {}, {}, {}, {}
    for name, (dtype, autocast) in SETTINGS.items():
        model, tokenizer = build(args.router, skills, dtype, autocast)
        rows = []
        with torch.no_grad():
            for prompt in prompts:
                ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
                rows.append(model(**ids).logits[0].float())
        logits[name] = torch.cat(rows)  # (positions, vocab)
        start = time.perf_counter()
        report = evaluate_options(model, tokenizer, args.task, data, limit=args.limit)
        seconds[name] = time.perf_counter() - start
        answers[name] = report["predictions"]
        metrics[name] = report["metrics"]
        print(f"{name}: {report['metrics']}", flush=True)
        del model

    ref, default, fast = (logits[k] for k in SETTINGS)

    def compare(a: torch.Tensor, b: torch.Tensor) -> dict[str, float]:
        diff = (a - b).abs()
        return {
            "mean_abs": diff.mean().item(),
            "p99_abs": diff.flatten().kthvalue(int(0.99 * diff.numel())).values.item(),
            "max_abs": diff.max().item(),
            "argmax_agreement": (a.argmax(-1) == b.argmax(-1)).float().mean().item(),
        }

    def agreement(x: str, y: str) -> float:
        return sum(p == q for p, q in zip(answers[x], answers[y])) / len(answers[x])

    names = list(SETTINGS)
    result = {
        "task": args.task,
        "router": args.router or f"static, uniform gates over {args.skills_dir}",
        "prompts": args.prompts,
        "positions": int(ref.shape[0]),
        "logits": {
            "bf16 (fp32 skills) vs fp32 reference: the model's own bf16 rounding": compare(default, ref),
            "bf16 skills vs fp32 reference": compare(fast, ref),
            "bf16 skills vs fp32 skills, both on the bf16 model: what the fast path changes": compare(fast, default),
        },
        "answers_agreement": {f"{x} vs {y}": agreement(x, y) for i, x in enumerate(names) for y in names[i + 1 :]},
        "answers_records": len(answers[names[0]]),
        "answers_metrics": metrics,
        "scoring_seconds": seconds,
    }
    for label, row in result["logits"].items():
        print(f"{label}: {row}")
    print(result["answers_agreement"])
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
