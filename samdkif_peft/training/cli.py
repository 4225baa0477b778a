"""`samdkif train skill NAME ...` and `samdkif train router TASK --skills name=path ...`.

Imports stay inside the commands so `samdkif --help` starts fast. Bad input (unknown skill or task, data not built,
missing skill or base model, a `max_length` too small for a record) is one `error:` line and exit status 1.
"""

from __future__ import annotations

import argparse
import logging
import sys


def add_cli_parser(parser: argparse.ArgumentParser) -> None:
    """Fill in the `samdkif train` parser (created by `samdkif_cli`, which holds its help line)."""
    from ..tuner.config import GATE_SCOPES
    from ..tuner.router import ROUTERS, describe_routers
    from .train_router import DEFAULT_SKILL_PRIOR_RECORDS

    train = parser
    train_sub = train.add_subparsers(dest="train_command", required=True)

    skill = train_sub.add_parser("skill", help="train one skill adapter (LoRA r8 on q_proj/v_proj by default)")
    skill.add_argument("name", help="skill name, e.g. entity_synonymy (build its data with `samdkif data build`)")
    skill.add_argument("--peft-type", choices=("lora", "adalora"), default="lora",
                       help="lora (default, measured better) or adalora (the paper's recipe)")  # fmt: skip
    _add_common(skill)
    skill.set_defaults(func=run_train_skill)

    router = train_sub.add_parser("router", help="train a skill router over frozen skills for one downstream task")
    router.add_argument("task", help="task name, e.g. elixhauser_comorbidity")
    router.add_argument(
        "--skills", nargs="+", required=True, metavar="NAME=PATH", help="skills to mix: name=adapter folder or Hub id"
    )
    router.add_argument(
        "--router", choices=tuple(ROUTERS), default="sequence", help=f"router kind: {describe_routers()}"
    )
    router.add_argument("--top-k", type=int, default=None, help="keep only the top-k skills per decision")
    router.add_argument("--null-expert", action="store_true", help="add a 'base model only' choice")
    router.add_argument("--gate-scope", choices=GATE_SCOPES, default=None, help="which adapted modules share one "
                        "gate: module (each its own), layer (one per decoder block) or model (one); default: model "
                        "for a sequence or static router alone (--task-rank 0), module for the hybrid and the token "
                        "router")  # fmt: skip
    router.add_argument("--sequence-input", default=None, help="what the sequence router pools: embeddings, "
                        "first_layer or layer:N (the hidden state entering block N; default: embeddings)")  # fmt: skip
    router.add_argument("--skill-prior", type=int, default=DEFAULT_SKILL_PRIOR_RECORDS, help="start the router from "
                        "each skill's loss on this many training records when one skill fits the task (default "
                        "%(default)s; 0: uniform start)")  # fmt: skip
    router.add_argument("--task-rank", type=int, default=8, help="rank of the joint task LoRA (0: router only)")
    router.add_argument("--task-learning-rate", type=float, default=None, help="hybrid: task LoRA rate (5e-3)")
    router.add_argument("--bundle-skills", action="store_true", help="copy the skills into the router folder")
    _add_common(router)
    router.set_defaults(func=run_train_router)


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--base-model", default=None, help="base model folder or Hub id (default: the prepared SmolLM2)")
    p.add_argument("--out", required=True, help="output folder (checkpoints go to OUT/checkpoints)")
    p.add_argument("--data-dir", default=None, help="built datasets folder (default <cache>/datasets)")
    p.add_argument("--max-steps", type=int, default=None, help="stop after N optimizer steps (default: one epoch)")
    p.add_argument("--num-train-epochs", type=float, default=None, help="epochs (default 1)")
    p.add_argument("--learning-rate", type=float, default=None, help="default 1e-3 (skill) / 5e-3 (router)")
    p.add_argument("--batch-size", type=int, default=None, help="per-device train batch size (default 8)")
    p.add_argument("--save-steps", type=int, default=None, help="checkpoint (and evaluate) every N steps (100)")
    p.add_argument("--max-train-samples", type=int, default=None, help="use the first N training records")
    p.add_argument("--max-eval-samples", type=int, default=None, help="use the first N validation records")
    p.add_argument(
        "--balance-labels",
        action="store_true",
        help="resample training records so each distinct output is equally frequent (label tasks)",
    )
    p.add_argument(
        "--max-length", type=int, default=None, help="longest sequence in tokens (default 256 skill / 384 router)"
    )
    p.add_argument("--dtype", choices=("bfloat16", "float32"), default="bfloat16", help="base model dtype")
    p.add_argument("--seed", type=int, default=None, help="seed (default 42)")
    p.add_argument("--resume", action="store_true", help="resume from the newest checkpoint in OUT/checkpoints")


def _training_overrides(args: argparse.Namespace) -> dict:
    overrides = {
        "max_steps": args.max_steps,
        "num_train_epochs": args.num_train_epochs,
        "learning_rate": args.learning_rate,
        "per_device_train_batch_size": args.batch_size,
        "save_steps": args.save_steps,
        "eval_steps": args.save_steps,
        "seed": args.seed,
    }
    return {k: v for k, v in overrides.items() if v is not None}


def _common_kwargs(args: argparse.Namespace) -> dict:
    """Keyword arguments `train_skill` and `train_router` share; an unset --max-length keeps each one's default."""
    kwargs = dict(
        training_args=_training_overrides(args),
        data_dir=args.data_dir,
        max_train_samples=args.max_train_samples,
        max_eval_samples=args.max_eval_samples,
        balance_labels=args.balance_labels,
        dtype=args.dtype,
        resume_from_checkpoint=args.resume,
    )
    return kwargs | ({"max_length": args.max_length} if args.max_length else {})


def _base_model(args: argparse.Namespace) -> str:
    if args.base_model is not None:
        return args.base_model
    from samdkif_peft.base_model import prepare_base_model

    return str(prepare_base_model())


def _parse_skills(pairs: list[str]) -> dict[str, str]:
    skills = {}
    for pair in pairs:
        name, sep, path = pair.partition("=")
        if not sep or not name or not path:
            raise ValueError(f"--skills expects NAME=PATH entries (e.g. ner=skills/ner), got {pair!r}")
        if name in skills:
            raise ValueError(f"--skills names skill {name!r} twice; give each skill once")
        skills[name] = path
    return skills


def _errors():
    # OSError: data not built, missing skill, base model or source wheel (SourceUnavailableError is one);
    # ValueError/TypeError: bad names/values, corrupt wheels (CorruptWheelError is a ValueError)
    return (ValueError, TypeError, OSError)


def run_train_skill(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        from samdkif_peft.training.train_skill import train_skill

        path = train_skill(
            args.name,
            _base_model(args),
            args.out,
            peft_type=args.peft_type,
            **_common_kwargs(args),
        )
    except _errors() as err:
        print(f"samdkif train skill: error: {err}", file=sys.stderr)
        return 1
    print(path)
    return 0


def run_train_router(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        from samdkif_peft.training.train_router import train_router

        path = train_router(
            args.task,
            _parse_skills(args.skills),
            _base_model(args),
            args.out,
            router=args.router,
            top_k=args.top_k,
            null_expert=args.null_expert,
            gate_scope=args.gate_scope,
            sequence_input=args.sequence_input,
            skill_prior_records=args.skill_prior,
            task_rank=args.task_rank,
            **({"task_learning_rate": args.task_learning_rate} if args.task_learning_rate is not None else {}),
            bundle_skills=args.bundle_skills,
            **_common_kwargs(args),
        )
    except _errors() as err:
        print(f"samdkif train router: error: {err}", file=sys.stderr)
        return 1
    print(path)
    return 0
