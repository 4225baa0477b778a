"""Where the time of a routed forward goes: torch profiler over the base model and the 12-skill routers.

    python benchmarks/profile_router.py [--router sequence] [--batch 8] [--seq 128] [--threads 2]

Same model and skills as `bench_router.py` (SmolLM2-135M shape, bf16, LoRA r8 skills on q_proj/v_proj). Prints, for
the base model and the router, the operators with the most self CPU time per forward, and the router's extra time
split by operator, so the overhead over the FLOP floor can be attributed before anything is optimised (issue 8).
Writes benchmarks/results/router_profile.json.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch
from peft import get_peft_model
from torch.profiler import ProfilerActivity, profile

from samdkif_peft import SkillRouterConfig


HERE = Path(__file__).resolve().parent


def self_times(model, inputs, repeats: int) -> dict[str, float]:
    """Self CPU milliseconds per forward, by operator name."""
    with torch.no_grad():
        model(**inputs)  # warm-up
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(repeats):
                model(**inputs)
    return {e.key: e.self_cpu_time_total / 1000 / repeats for e in prof.key_averages()}


def main() -> None:
    from bench_router import PRESETS, build_base, load, make_skills

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--router", default="sequence")
    parser.add_argument("--skills", type=int, default=12)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--top", type=int, default=12)
    parser.add_argument("--out", default=str(HERE / "results" / "router_profile.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    dtype = torch.bfloat16
    with tempfile.TemporaryDirectory() as root:
        base_dir = f"{root}/base"
        build_base("smollm2", base_dir, dtype)
        skills = make_skills(base_dir, root, args.skills, dtype)
        vocab = PRESETS["smollm2"]["vocab_size"]
        inputs = {"input_ids": torch.randint(3, vocab, (args.batch, args.seq)), "use_cache": False}
        base = self_times(load(base_dir, dtype), inputs, args.repeats)
        config = SkillRouterConfig(skills=skills, router=args.router, task_type="CAUSAL_LM")
        routed = self_times(get_peft_model(load(base_dir, dtype), config).eval(), inputs, args.repeats)
    total_base, total_routed = sum(base.values()), sum(routed.values())
    extra = {op: routed.get(op, 0.0) - base.get(op, 0.0) for op in set(base) | set(routed)}
    print(
        f"forward {args.batch}x{args.seq}, {args.threads} threads: base {total_base:.1f} ms, "
        f"{args.router} router over {args.skills} skills {total_routed:.1f} ms ({total_routed / total_base:.3f}x)"
    )
    print(f"\nthe router's extra self CPU time by operator ({total_routed - total_base:+.1f} ms in all):")
    for op, ms in sorted(extra.items(), key=lambda kv: -kv[1])[: args.top]:
        print(f"  {op:40s} {ms:+8.2f} ms  (base {base.get(op, 0.0):7.2f}, router {routed.get(op, 0.0):7.2f})")
    payload = {"router": args.router, "skills": args.skills, "batch": [args.batch, args.seq], "threads": args.threads,
               "base_ms": base, "router_ms": routed}  # fmt: skip
    Path(args.out).write_text(json.dumps(payload, indent=1) + "\n")


if __name__ == "__main__":
    main()
