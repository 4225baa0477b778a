"""What each op of the skill path costs in one adapted layer, against that layer's own bf16 matmul.

One SmolLM2-shaped projection (q_proj: 576 -> 576; v_proj: 576 -> 192) with 12 skills of rank 8 (96 rank slots), at a
forward's token count (8 x 128 = 1024 rows) and a decode step's (1 row). Each op is timed alone (median of repeats),
in float32 (peft's default adapter dtype, ours too) and in bf16 (`autocast_adapter_dtype=False`). This is where the
whole-model ratios of `bench_router.py` come from, and what bounds them from below.

    python benchmarks/layer_costs.py            # ~1 minute on 2 cores

Writes benchmarks/results/layer_costs.json.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from bench_router import median_seconds  # the benchmarks' one timer (this folder is on the path when run as a script)

from samdkif_peft.utils import cpu_description


RESULTS = Path(__file__).resolve().parent / "results"


def micros(fn, repeats: int) -> float:
    return 1e6 * median_seconds(fn, repeats, warmup=3)


def costs(rows: int, out: int, slots: int, repeats: int) -> dict[str, float]:
    torch.manual_seed(0)
    x = torch.randn(rows, 576).bfloat16()
    W = (0.02 * torch.randn(out, 576)).bfloat16()
    A, B = 0.02 * torch.randn(slots, 576), 0.02 * torch.randn(out, slots)
    A16, B16 = A.bfloat16(), B.bfloat16()
    xf = x.float()
    z, z16 = F.linear(xf, A), F.linear(x, A16)
    base = F.linear(x, W)
    delta = F.linear(z, B)
    return {
        "base matmul (bf16)": micros(lambda: F.linear(x, W), repeats),
        "upcast x to fp32": micros(lambda: x.float(), repeats),
        "x A^T, fp32": micros(lambda: F.linear(xf, A), repeats),
        "z B^T, fp32": micros(lambda: F.linear(z, B), repeats),
        "add fp32 delta, round to bf16": micros(lambda: (base + delta).to(torch.bfloat16), repeats),
        "x A^T, bf16": micros(lambda: F.linear(x, A16), repeats),
        "z B^T, bf16": micros(lambda: F.linear(z16, B16), repeats),
        "add bf16 delta": micros(lambda: base + delta.bfloat16(), repeats),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skills", type=int, default=12)
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--out", default=str(RESULTS / "layer_costs.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    slots = args.skills * args.rank
    result = {"skills": args.skills, "rank": args.rank, "threads": args.threads, "torch": torch.__version__,
              "cpu": cpu_description(), "us": {}}  # fmt: skip
    for module, out in (("q_proj", 576), ("v_proj", 192)):
        for rows in (1024, 1):
            row = costs(rows, out, slots, args.repeats if rows > 1 else 10 * args.repeats)
            fp32 = sum(row[k] for k in ("upcast x to fp32", "x A^T, fp32", "z B^T, fp32",
                                        "add fp32 delta, round to bf16"))  # fmt: skip
            bf16 = sum(row[k] for k in ("x A^T, bf16", "z B^T, bf16", "add bf16 delta"))
            row["skill path fp32 / base matmul"] = fp32 / row["base matmul (bf16)"]
            row["skill path bf16 / base matmul"] = bf16 / row["base matmul (bf16)"]
            result["us"][f"{module}, {rows} rows"] = row
            print(f"{module}, {rows} rows: " + ", ".join(f"{k} {v:.1f}" for k, v in row.items()), flush=True)
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
