"""SA-MDKIF end to end on SmolLM2: 12 skills, one router per task, and the comparison the paper's claim rests on.

    samdkif pipeline run --preset smoke --out-dir runs/smoke   # plumbing check on the real model, ~15 min on 2 cores
    samdkif pipeline run --out-dir runs/medical                # the full run: hours on 2 cores, resumable

Stages, each skipped when its output is complete, so a stopped run picks up where it was:
1. base model (`prepare_base_model`) and data (`build`), both cached;
2. `skills/<skill>/`: one skill adapter per basic medical skill (`train_skill`: LoRA r8; AdaLoRA on request);
3. `routers/<task>/`: one sequence router over all skills per downstream task (`train_router`); `hybrids/<task>/`:
   the router plus a jointly trained rank-8 task LoRA (`task_rank=8`); `task_loras/<task>/`: a plain LoRA r8 on
   the task alone, same data, steps and seed (what a user would pick instead);
4. `eval/<variant>/<task>.json`: greedy answers on the task's test split, scored with its metrics, for
   `base` (the frozen LM), `uniform` (all skills averaged: the untrained, zero-initialised router), `own_skill`
   (the skill of the task's type alone; seen tasks only), `router` (SA-MDKIF), `hybrid` and `task_lora`. Tasks
   with a closed answer space are also scored by option log-likelihood (`options` in the same file: accuracy,
   macro-F1, bootstrap intervals, prediction counts, majority baseline);
5. `results.json`: every score plus the router's gain over the base model, absolute and relative.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from .utils import atomic_write_text


logger = logging.getLogger(__name__)

VARIANTS = ("base", "uniform", "own_skill", "router", "hybrid", "task_lora")
TRAINED_FOLDERS = {"router": "routers", "hybrid": "hybrids", "task_lora": "task_loras"}


@dataclass
class PipelineConfig:
    """What to train and evaluate; presets below size it for a quick check or the full run."""

    out_dir: str = field(default="runs/medical", metadata={"help": "Where skills, routers and scores go."})
    skills: list[str] | None = field(default=None, metadata={"help": "Skills to train (default: all 12)."})
    tasks: list[str] | None = field(default=None, metadata={"help": "Tasks to adapt to (default: all 9)."})
    variants: list[str] = field(default_factory=lambda: list(VARIANTS), metadata={"help": "Models to evaluate."})
    router: str = field(default="sequence", metadata={"help": "Router kind of the SA-MDKIF variant (tuner.router)."})
    skill_train_samples: int | None = field(default=None, metadata={"help": "Cap per skill (None: all 3,000)."})
    skill_max_steps: int = field(default=-1, metadata={"help": "Cap on skill training steps (-1: one epoch)."})
    router_train_samples: int | None = field(default=None, metadata={"help": "Cap per task (None: all)."})
    router_max_steps: int = field(default=-1, metadata={"help": "Cap on router training steps (-1: one epoch)."})
    eval_samples: int | None = field(default=None, metadata={"help": "Test records per task (None: all 300)."})
    eval_batch_size: int = field(default=16, metadata={"help": "Generation batch size."})
    base_model: str | None = field(default=None, metadata={"help": "Base model folder (default: prepared SmolLM2)."})
    data_dir: str | None = field(default=None, metadata={"help": "Built datasets (default: the data cache)."})
    seed: int = field(default=42, metadata={"help": "Training seed."})

    def __post_init__(self) -> None:
        from .data import SKILLS, TASKS

        for kind, names, known in (("skill", self.skills, SKILLS), ("task", self.tasks, TASKS)):
            unknown = sorted(set(names or ()) - set(known))
            if unknown:
                raise ValueError(f"Unknown {kind}(s) {unknown}; choose from: {', '.join(known)}")
        unknown = sorted(set(self.variants) - set(VARIANTS))
        if unknown:
            raise ValueError(f"Unknown variant(s) {unknown}; choose from: {', '.join(VARIANTS)}")
        self.skills = list(self.skills or SKILLS)
        self.tasks = list(self.tasks or TASKS)


PRESETS: dict[str, dict[str, Any]] = {
    # every stage on the real model and data, tiny budgets: checks the plumbing, says nothing about quality
    "smoke": dict(
        skill_train_samples=64, skill_max_steps=8, router_train_samples=64, router_max_steps=8, eval_samples=16
    ),
    "default": {},
}


def run_pipeline(config: PipelineConfig) -> dict[str, Any]:
    """Run (or resume) every stage and return the summary also written to `<out_dir>/results.json`."""
    from .base_model import resolve_base_model
    from .data.build import DataBuildConfig, build, missing_datasets
    from .data.fetch import default_cache_dir

    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(str(out / "pipeline_config.json"), json.dumps(asdict(config), indent=2))
    base = resolve_base_model(config.base_model)
    data_dir = config.data_dir or str(default_cache_dir() / "datasets")
    missing = missing_datasets(data_dir, config.skills, config.tasks)
    if missing:
        logger.info("building the data (%s missing)", ", ".join(missing))
        build(DataBuildConfig(out_dir=data_dir))

    skills = {name: ensure_skill(config, name, base, data_dir, out) for name in config.skills}
    for task in config.tasks:
        for variant in ("router", "hybrid"):
            if variant in config.variants:
                _train_router(config, task, skills, base, data_dir, out, variant)
        if "task_lora" in config.variants:
            _train_task_lora(config, task, base, data_dir, out)
        for variant in config.variants:
            _evaluate(config, variant, task, skills, base, data_dir, out)
    summary = summarize(out, config.tasks, config.variants)
    atomic_write_text(str(out / "results.json"), json.dumps(summary, indent=2))
    return summary


def ensure_skill(config: PipelineConfig, name: str, base: str, data_dir: str, out: Path) -> str:
    """`<out>/skills/<name>`, trained (or resumed) unless already finished; also the release's training stage."""
    from .training import train_skill
    from .training.common import training_finished

    folder = out / "skills" / name
    if not training_finished(folder):
        logger.info("training skill %s", name)
        args = {"max_steps": config.skill_max_steps, "seed": config.seed}
        train_skill(name, base, folder, training_args=args, data_dir=data_dir,
                    max_train_samples=config.skill_train_samples, max_eval_samples=64,
                    resume_from_checkpoint=True)  # fmt: skip
    return str(folder.resolve())


def _train_router(config: PipelineConfig, task: str, skills: dict[str, str], base: str, data_dir: str, out: Path,
                  variant: str = "router") -> None:  # fmt: skip
    from .training import train_router
    from .training.common import training_finished
    from .training.train_router import DEFAULT_TASK_RANK

    folder = out / TRAINED_FOLDERS[variant] / task
    if not training_finished(folder):
        logger.info("training the %s %s for %s", config.router, variant, task)
        args = {"max_steps": config.router_max_steps, "seed": config.seed}
        task_rank = DEFAULT_TASK_RANK if variant == "hybrid" else 0
        train_router(task, skills, base, folder, router=config.router, task_rank=task_rank, training_args=args,
                     data_dir=data_dir, max_train_samples=config.router_train_samples, max_eval_samples=64,
                     resume_from_checkpoint=True)  # fmt: skip


def _train_task_lora(config: PipelineConfig, task: str, base: str, data_dir: str, out: Path) -> None:
    """The baseline a user would pick: a LoRA on the task alone, with the router's data, step budget and seed."""
    from .data import load_task
    from .training import train_skill
    from .training.common import DEFAULT_ROUTER_MAX_LENGTH, training_finished
    from .training.train_router import TASK_LEARNING_RATE

    folder = out / TRAINED_FOLDERS["task_lora"] / task
    if not training_finished(folder):
        logger.info("training the task LoRA for %s", task)
        # the same rate as the hybrid's task LoRA: 5e-3 was also the better task-LoRA rate (docs/MEDICAL_VALUE.md)
        args = {"max_steps": config.router_max_steps, "seed": config.seed, "learning_rate": TASK_LEARNING_RATE}
        train_skill(task, base, folder, peft_type="lora", training_args=args, dataset=load_task(task, data_dir),
                    max_train_samples=config.router_train_samples, max_eval_samples=64,
                    max_length=DEFAULT_ROUTER_MAX_LENGTH,  # the routers' length: long records cut alike
                    resume_from_checkpoint=True)  # fmt: skip


def _evaluate(config: PipelineConfig, variant: str, task: str, skills: dict[str, str], base: str, data_dir: str,
              out: Path) -> None:  # fmt: skip
    from .data import TASKS, load_task
    from .evaluation.generation import evaluate_task
    from .evaluation.likelihood import evaluate_options, scoreable

    spec = TASKS[task]
    path = out / "eval" / variant / f"{task}.json"
    if path.is_file() or (variant == "own_skill" and spec.skill_type not in skills):
        return
    model, tokenizer = _load_variant(variant, task, skills, base, out)
    logger.info("evaluating %s on %s", variant, task)
    # the skill of the task's type alone: the same mixed model with the router overridden
    forced = model.base_model.force_skill_weights({spec.skill_type: 1.0}) if variant == "own_skill" else nullcontext()
    dataset = load_task(task, data_dir=data_dir)
    with forced:
        result = evaluate_task(model, tokenizer, spec, dataset, limit=config.eval_samples,
                               batch_size=config.eval_batch_size)  # fmt: skip
        if scoreable(spec):  # knowledge, not format: rank the allowed answers
            result["options"] = evaluate_options(model, tokenizer, spec, dataset, limit=config.eval_samples,
                                                 batch_size=config.eval_batch_size)  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(str(path), json.dumps({"variant": variant, "task": task, **result}, indent=2))


def _load_variant(variant: str, task: str, skills: dict[str, str], base: str, out: Path):
    from peft import PeftModel, get_peft_model

    from .base_model import load_base_model
    from .tuner import SkillRouterConfig

    model, tokenizer = load_base_model(base)
    if variant == "base":
        return model, tokenizer
    if variant in TRAINED_FOLDERS:
        return PeftModel.from_pretrained(model, str(out / TRAINED_FOLDERS[variant] / task)), tokenizer
    config = SkillRouterConfig(skills=skills, router="static", task_type="CAUSAL_LM")  # zero-init: the uniform mix
    return get_peft_model(model, config), tokenizer


def summarize(out: str | os.PathLike[str], tasks: list[str], variants: list[str]) -> dict[str, Any]:
    """Scores per task and variant from `eval/`, and the router's gain over the base model on the primary metric."""
    from .data import TASKS

    rows = {}
    for task in tasks:
        spec, row = TASKS[task], {}
        for variant in variants:
            path = Path(out) / "eval" / variant / f"{task}.json"
            if path.is_file():
                result = json.loads(path.read_text())
                row[variant] = {"metrics": result["metrics"], "n": result["n"], "seconds": result["seconds"]}
                if "options" in result:
                    options = result["options"]
                    row[variant]["options"] = {
                        **options["metrics"],
                        "intervals": options["report"]["intervals"],
                        "prediction_counts": options["report"]["prediction_counts"],
                        "majority": options["report"]["baselines"]["majority"],
                    }
        base, router = row.get("base"), row.get("router")
        gain = {}
        if base and router:
            b, r = base["metrics"][spec.metric], router["metrics"][spec.metric]
            gain = {"absolute": r - b, "relative": (r - b) / b if b > 0 else None}
        rows[task] = {"metric": spec.metric, "unseen": spec.unseen, "scores": row, "router_gain": gain}
    return {"tasks": rows, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def add_cli_parser(parser: argparse.ArgumentParser) -> None:
    """Fill in the `samdkif pipeline` parser (created by `samdkif_cli`, which holds its help line)."""
    pipeline = parser
    sub = pipeline.add_subparsers(dest="pipeline_command", required=True)
    p = sub.add_parser("run", help="run or resume every stage (see `samdkif_peft.pipeline`)")
    p.add_argument("--preset", choices=sorted(PRESETS), default="default", help="budget preset (default: full run)")
    for f in fields(PipelineConfig):
        flag = "--" + f.name.replace("_", "-")
        if f.name in ("skills", "tasks", "variants"):
            p.add_argument(flag, nargs="+", default=None, help=f.metadata["help"])
        else:
            kind = int if f.type in ("int", "int | None") else str
            p.add_argument(flag, type=kind, default=None, help=f.metadata["help"])
    p.set_defaults(func=_run_command)


def _run_command(args: argparse.Namespace) -> int:
    import sys

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    overrides = {f.name: getattr(args, f.name) for f in fields(PipelineConfig) if getattr(args, f.name) is not None}
    try:
        config = PipelineConfig(**{**PRESETS[args.preset], **overrides})
    except ValueError as err:
        print(f"samdkif pipeline run: error: {err}", file=sys.stderr)
        return 1
    summary = run_pipeline(config)
    for task, row in summary["tasks"].items():
        scores = ", ".join(f"{v}={s['metrics'][row['metric']]:.3f}" for v, s in row["scores"].items())
        print(f"{task:32s} {row['metric']:12s} {scores}")
    return 0
