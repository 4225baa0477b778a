"""`samdkif skills release|push`: the twelve skills as Hub adapter repos (see `samdkif_peft.release.skills`)."""

from __future__ import annotations

import argparse
import logging
import sys


def add_cli_parser(parser: argparse.ArgumentParser) -> None:
    """Fill in the `samdkif skills` parser (created by `samdkif_cli`, which holds its help line)."""
    from .skills import DEFAULT_RELEASE_DIR, DEFAULT_WORK_DIR

    skills = parser
    sub = skills.add_subparsers(dest="skills_command", required=True)
    release = sub.add_parser("release", help="train (or resume) and package the skills as adapter repos with cards")
    release.add_argument("--out", default=DEFAULT_RELEASE_DIR, help=f"release folder (default {DEFAULT_RELEASE_DIR})")
    release.add_argument("--work-dir", default=DEFAULT_WORK_DIR, help="training runs and checkpoints (skills/<name>)")
    release.add_argument("--skills", nargs="+", default=None, help="skill names (default: all 12)")
    release.add_argument("--base-model", default=None, help="base model folder (default: the prepared SmolLM2)")
    release.add_argument("--data-dir", default=None, help="built datasets (default: the data cache)")
    release.add_argument("--seed", type=int, default=42, help="training seed (default 42)")
    release.add_argument("--max-steps", type=int, default=-1, help="cap on training steps (default: one epoch)")
    release.add_argument("--train-samples", type=int, default=None, help="records per skill (default: all)")
    release.set_defaults(func=run_release)
    push = sub.add_parser("push", help="upload release/skills/skill-<name> as <namespace>/skill-<name>")
    push.add_argument("--dir", default=DEFAULT_RELEASE_DIR, help=f"release folder (default {DEFAULT_RELEASE_DIR})")
    push.add_argument("--namespace", default=None, help="Hub user or organisation (default samdkif)")
    push.set_defaults(func=run_push)


def run_release(args: argparse.Namespace) -> int:
    from .skills import release_skills

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    try:
        released = release_skills(args.out, work_dir=args.work_dir, skills=args.skills, base_model=args.base_model,
                                  data_dir=args.data_dir, seed=args.seed, max_steps=args.max_steps,
                                  train_samples=args.train_samples)  # fmt: skip
    except (ValueError, FileNotFoundError) as err:
        print(f"samdkif skills release: error: {err}", file=sys.stderr)
        return 1
    for name, folder in released.items():
        print(f"{name:32s} {folder}")
    return 0


def run_push(args: argparse.Namespace) -> int:
    from .skills import push_skills

    try:
        pushed = push_skills(args.dir, namespace=args.namespace)
    except (OSError, ValueError) as err:
        print(f"samdkif skills push: error: {err}", file=sys.stderr)
        return 1
    for repo_id, sha in pushed.items():
        print(f"{repo_id:40s} {sha}")
    return 0
