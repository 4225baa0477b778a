"""`samdkif router train`: your own task in one command (see `samdkif_peft.task_router.run`).

samdkif router train --train my_train.jsonl --test my_test.jsonl --out runs/my-task --baseline task-lora
"""

from __future__ import annotations

import argparse
import logging
import sys


def add_train_parser(router_sub: argparse._SubParsersAction) -> None:
    from .kinds import KINDS
    from .run import BASELINES, HYBRID, router_choices

    p = router_sub.add_parser(
        "train",
        help="train a router on your own task (JSONL/CSV/Parquet) and report it against the base model",
        description=__doc__.splitlines()[0],
    )
    p.add_argument("--train", required=True, help="training records: .jsonl/.csv/.parquet, or a datasets id[:split]")
    p.add_argument("--test", required=True, help="test records, same formats (scored, never trained on)")
    p.add_argument("--validation", default=None, help="validation records (eval loss during training)")
    p.add_argument("--out", required=True, help="output folder: router, card, predictions, report (resumable)")
    p.add_argument("--skills", nargs="+", default=None,
                   help="skills: NAME=REF, Hub ids (org/skill-ner), adapter folders or a folder of them "
                        "(default: the 12 released skills)")  # fmt: skip
    p.add_argument("--router", choices=router_choices(), default=HYBRID,
                   help="hybrid (default: sequence router + rank-8 task LoRA) or a router alone")  # fmt: skip
    p.add_argument("--baseline", choices=BASELINES, default=None, help="also train and score a plain task LoRA")
    p.add_argument("--kind", choices=KINDS, default=None, help="task kind (default: detected from the data)")
    p.add_argument("--columns", default=None, help="map column names, e.g. context=note,query=question,output=label")
    p.add_argument("--name", default=None, help="task name in the report and card (default: the --out folder name)")
    p.add_argument("--base-model", default=None, help="base model folder or Hub id (default: the prepared SmolLM2)")
    p.add_argument("--max-steps", type=int, default=None, help="training steps (overrides --epochs)")
    p.add_argument("--epochs", type=float, default=1.0, help="passes over the training records at batch 8 (default 1)")
    p.add_argument(
        "--balance-labels",
        action="store_true",
        help="class-balanced training records for the router and the baseline (label tasks)",
    )
    p.add_argument("--retrieve", type=int, default=0, metavar="N",
                   help="list the N most similar training records, with their answers, in every prompt (BM25; "
                        "saved, and pushed, with the router as retrieval_memory.jsonl; default 0: off)")  # fmt: skip
    p.add_argument("--max-length", type=int, default=None, metavar="TOKENS",
                   help="longest training sequence (default 384); raise it when --retrieve examples do not "
                        "fit")  # fmt: skip
    p.add_argument("--seed", type=int, default=42, help="training seed (default 42)")
    p.add_argument("--eval-limit", type=int, default=None, help="score only the first N test records")
    p.add_argument("--bundle-skills", action="store_true", help="copy the skills into the router folder")
    p.add_argument("--push-to-hub", default=None, help="push router, card and report to this Hub repo")
    p.add_argument("--quiet", action="store_true", help="no progress bars or stage logs")
    p.set_defaults(func=run_train)


def run_train(args: argparse.Namespace) -> int:
    from .inputs import TaskDataError
    from .run import train_task_router

    if not args.quiet:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    try:
        result = train_task_router(
            args.train, args.test, args.out, validation=args.validation, skills=args.skills, router=args.router,
            baseline=args.baseline, kind=args.kind, columns=args.columns, name=args.name, base_model=args.base_model,
            max_steps=args.max_steps, epochs=args.epochs, seed=args.seed, balance_labels=args.balance_labels,
            retrieve=args.retrieve,
            max_length=args.max_length,
            eval_limit=args.eval_limit, bundle_skills=args.bundle_skills, push_to_hub=args.push_to_hub,
            progress=not args.quiet,
        )  # fmt: skip
    except (TaskDataError, ValueError, FileNotFoundError) as err:
        print(f"samdkif router train: error: {err}", file=sys.stderr)
        return 1
    markdown = open(result.report_path).read()
    print(markdown.split("\n## What each model answered")[0].rstrip())
    print(f"\nreport: {result.report_path}\npredictions: {result.predictions_path}")
    print(f"router: {result.output_dir} (PeftModel.from_pretrained(base, {result.output_dir!r}))")
    return 0
