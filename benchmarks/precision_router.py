"""How much the skill path's dtype moves real outputs, against what bf16 rounding of the model already moves them.

The real SmolLM2 with the twelve shipped skills, on real test prompts of a task. Three ways to run it:
- `fp32 reference`: the whole model and the skills in float32;
- `bf16, fp32 skills`: the bf16 model with float32 skill factors (peft's `autocast_adapter_dtype=True` default);
- `bf16, bf16 skills`: the bf16 model with bf16 skill factors (`autocast_adapter_dtype=False`, the fast path).
For every prompt and position it compares the logits (absolute differences) and the next-token argmax, and the task's
answers by option log-likelihood on all test records.

    python benchmarks/precision_router.py                              # static uniform router over release/skills
    python benchmarks/precision_router.py --router ROUTER_DIR --task icd10cm_excludes_nli
    python benchmarks/precision_router.py --router ROUTER_DIR --layers   # each adapted layer, in bf16 ulps

Writes benchmarks/results/router_precision.json (`--layers`: router_precision_layers.json).

`--layers` asks the question of the issue at the level where rounding happens: every adapted layer of the bf16
model, on real prompts, computes its output the default way (float32 skills) and the alternatives from the same
input, and each is compared with the layer's exact output (float64 from the same bf16 weights and input), in units
of the bf16 spacing (ulp) at that value. A layer that rounds once to bf16 is at best 0.25 ulp off on average; the
default rounds twice (the base matmul's output, then the sum). A null alternative, the same float32 path with the
rank slots in another order, shows what any equally precise change of summation order does downstream.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from pathlib import Path
from typing import Any

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


LAYER_VARIANTS = (
    "default: fp32 skills, added to the bf16 base output",
    "null: fp32 skills, rank slots reordered (equally precise)",
    "bf16 A only: x A^T in bf16, B and the sum in fp32",
    "bf16 skills: both skill matmuls in bf16, one bf16 add",
)


def layer_errors(model, prompts, tokenizer) -> dict[str, Any]:
    """Per adapted layer and prompt: each variant's error against the exact layer output, in bf16 ulps."""
    import torch.nn.functional as F

    from samdkif_peft.tuner.layer import SkillRouterLayer

    keep = torch.Generator().manual_seed(0)
    samples = {v: {"vs_exact": [], "vs_default": []} for v in LAYER_VARIANTS}
    counts = {v: 0 for v in LAYER_VARIANTS}
    stats = {"elements": 0, "delta_to_output_norm": []}

    def ulp(v: torch.Tensor) -> torch.Tensor:  # bf16 spacing at |v| (8 significant bits)
        return torch.exp2(torch.floor(torch.log2(v.abs().clamp_min(1e-30))) - 7)

    def hook(layer, inputs, output):
        x = inputs[0]
        name = layer.active_adapters[0]
        _, slot_w, A, B, task_folded = layer._mixing(name, x)
        if layer.skill_router_task_A and not task_folded:
            raise SystemExit("--layers expects the task LoRA folded into the skills' matmuls (eval, no grad)")
        result = layer.base_layer(x)
        w = 1 if slot_w is None else slot_w
        bias = layer.base_layer.bias
        base = F.linear(x.double(), layer.base_layer.weight.double(), None if bias is None else bias.double())
        exact = base + F.linear(F.linear(x.double(), A.double()) * (1 if slot_w is None else w.double()), B.double())
        perm = torch.randperm(A.shape[0], generator=torch.Generator().manual_seed(0))

        def fp32(A_, B_, w_):
            return (result.float() + F.linear(F.linear(x.float(), A_) * w_, B_)).to(result.dtype)

        z16 = F.linear(x, A.to(x.dtype))
        ys = {
            LAYER_VARIANTS[0]: fp32(A, B, w),
            LAYER_VARIANTS[1]: fp32(A[perm], B[:, perm], w if slot_w is None else w[..., perm]),
            LAYER_VARIANTS[2]: (result.float() + F.linear(z16.float() * w, B)).to(result.dtype),
            LAYER_VARIANTS[3]: result + F.linear(z16 * (w if slot_w is None else w.to(x.dtype)), B.to(x.dtype)),
        }
        if not torch.equal(ys[LAYER_VARIANTS[0]], output):
            raise SystemExit("the default variant does not reproduce the layer's own output")
        # In ulps at the larger of the exact output and the base output: where the skills' delta cancels the base
        # output, every variant keeps the base matmul's rounding, which is large in ulps of the small sum.
        spacing = ulp(torch.maximum(exact.abs(), base.abs())).flatten()
        pick = torch.rand(spacing.numel(), generator=keep) < 0.01
        for v, y in ys.items():
            counts[v] += (y != output).sum().item()
            samples[v]["vs_exact"].append(((y.double() - exact).abs().flatten() / spacing)[pick].float())
            samples[v]["vs_default"].append(((y.double() - output.double()).abs().flatten() / spacing)[pick].float())
        stats["elements"] += exact.numel()
        stats["delta_to_output_norm"].append(((exact - base).norm() / exact.norm()).item())

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, SkillRouterLayer)]
    with torch.no_grad():
        for prompt in prompts:
            model(**tokenizer(prompt, return_tensors="pt", add_special_tokens=False))
    for h in handles:
        h.remove()

    def summary(errors: list[torch.Tensor]) -> dict[str, float]:
        e = torch.cat(errors)
        q = torch.quantile(e, torch.tensor([0.5, 0.99, 0.999]))
        return {
            "mean": e.mean().item(),
            "median": q[0].item(),
            "p99": q[1].item(),
            "p99.9": q[2].item(),
            "above_2_ulp": (e > 2).float().mean().item(),
            "max": e.max().item(),
        }

    ratios = torch.tensor(stats["delta_to_output_norm"])
    return {
        "elements": stats["elements"],
        "sampled_elements": int(torch.cat(samples[LAYER_VARIANTS[0]]["vs_exact"]).numel()),
        "skill_delta_norm_over_output_norm": {"median": ratios.median().item(), "max": ratios.max().item()},
        "variants": {
            v: {
                "error_ulp_vs_exact": summary(samples[v]["vs_exact"]),
                "distance_to_default_ulp": summary(samples[v]["vs_default"]),
                "fraction_differing_from_default": counts[v] / stats["elements"],
            }
            for v in LAYER_VARIANTS
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--router", default=None, help="a trained router folder (default: static, uniform gates)")
    parser.add_argument("--skills-dir", default="release/skills")
    parser.add_argument("--task", default="icd10cm_excludes_nli")
    parser.add_argument("--prompts", type=int, default=32, help="test prompts whose logits are compared")
    parser.add_argument("--limit", type=int, default=None, help="test records scored by option log-likelihood")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--layers", action="store_true", help="per-layer errors in bf16 ulps (see the docstring)")
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
    if args.layers:
        model, tokenizer = build(args.router, skills, torch.bfloat16, True)
        result = {"task": args.task, "router": args.router or f"static, uniform gates over {args.skills_dir}",
                  "prompts": args.prompts, **layer_errors(model, prompts, tokenizer)}  # fmt: skip
        print(json.dumps(result, indent=1))
        out = args.out if args.out != parser.get_default("out") else str(RESULTS / "router_precision_layers.json")
        Path(out).write_text(json.dumps(result, indent=2))
        print(f"wrote {out}")
        return

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
