"""`train_task_router`: a user's own medical task in one call (CLI: `samdkif router train`).

    result = train_task_router("my_train.jsonl", "my_test.jsonl", "runs/my-task", baseline="task-lora")
    result.metrics["router"]["accuracy"], result.report_path

Stages, each skipped when its output exists, so a stopped run resumes where it was (training resumes from its last
checkpoint): read and check the data (before any model loads) -> score the base model -> train the router (the
hybrid by default) and score it -> train and score the task LoRA (`baseline="task-lora"`) -> write the report.
Everything lands in `output_dir`: the router itself (`PeftModel.from_pretrained(base, output_dir)`), its card,
`eval/<variant>.json`, `predictions.jsonl`, `report.json`, `report.md` and `routing.png`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..utils import atomic_write_text
from .inputs import TaskDataError, check_splits, read_split
from .kinds import detect_kind, label_summary, task_spec


logger = logging.getLogger(__name__)

# "hybrid" is the sequence router plus a jointly trained rank-8 task LoRA (the default: it beat the router alone and a
# plain task LoRA in docs/MEDICAL_VALUE.md); the registered router kinds train the router alone.
HYBRID = "hybrid"
BASELINES = ("task-lora",)
EVAL_DIR = "eval"
TASK_LORA_DIR = os.path.join("baselines", "task_lora")
TASK_FILE = "task.json"


def router_choices() -> tuple[str, ...]:
    """What `router=` accepts: the hybrid, then every registered router kind."""
    from ..tuner.router import ROUTERS

    return (HYBRID, *ROUTERS)


@dataclass
class TaskRouterResult:
    """What `train_task_router` produced; every path is inside `output_dir`."""

    output_dir: str
    kind: str
    report: dict[str, Any]

    @property
    def metrics(self) -> dict[str, dict[str, float]]:
        """Variant ("base", "router", "task_lora") -> metric -> value."""
        return self.report["metrics"]

    @property
    def report_path(self) -> str:
        return os.path.join(self.output_dir, "report.md")

    @property
    def predictions_path(self) -> str:
        return os.path.join(self.output_dir, "predictions.jsonl")

    @property
    def figure_path(self) -> str:
        return os.path.join(self.output_dir, "routing.png")


def train_task_router(
    train: Any,
    test: Any,
    output_dir: str | os.PathLike[str],
    *,
    validation: Any = None,
    skills: Mapping[str, str] | Sequence[str] | None = None,
    router: str = "hybrid",
    baseline: str | None = None,
    kind: str | None = None,
    columns: Mapping[str, str] | str | None = None,
    name: str | None = None,
    base_model: str | os.PathLike[str] | None = None,
    max_steps: int | None = None,
    epochs: float = 1.0,
    seed: int = 42,
    balance_labels: bool = False,
    retrieve: int = 0,
    max_length: int | None = None,
    eval_limit: int | None = None,
    bundle_skills: bool = False,
    push_to_hub: str | None = None,
    progress: bool = True,
) -> TaskRouterResult:
    """Train a skill router on a user's task, score it against the base model (and a task LoRA), write a report.

    Args:
        train, test, validation: a `.jsonl`/`.csv`/`.parquet` file, a `save_to_disk` folder, a `datasets` id
            (`org/name:split`), a `Dataset` or a list of dicts, with `context`, `query`, `output`.
        skills: `{name: reference}`, or `--skills` style entries (`samdkif_peft.skills.shipped`); default: the
            twelve released skills.
        router: `"hybrid"` (sequence router + rank-8 task LoRA), `"sequence"`, `"token"` or `"static"`.
        baseline: `"task-lora"` also trains a plain LoRA r8 on the same data, steps and seed.
        kind: `"label"`, `"multiple_choice"` or `"generation"`; detected from the data when None.
        columns: maps our column names to yours, e.g. `{"context": "note", "output": "label"}`.
        max_steps: optimizer steps for the router and the baseline; overrides `epochs`.
        epochs: passes over the training records at batch 8 (default 1; `num_train_epochs`).
        balance_labels: train the router and the baseline on class-balanced records (label and multiple-choice
            tasks; same record count, see `training.common.balance_by_output`).
        retrieve: put the N most similar training records, with their answers, into every prompt (BM25 over the
            contexts; a training record never sees itself; as many as fit the training length), for training and
            scoring alike. The memory (the training records' contexts and answers) is saved beside the router, and
            pushed with it: `RetrievalMemory.from_pretrained(out).add_examples(new, tokenizer)` gives new prompts
            the same treatment. 0 (default): off.
        max_length: the longest training sequence in tokens (default 384, `DEFAULT_ROUTER_MAX_LENGTH`); raise it
            when retrieved examples do not fit long prompts (the report counts the examples each prompt kept).
        eval_limit: score only the first N test records (quick checks; reports say so).
        push_to_hub: a repo id to push the router, its card and report to (skills must be Hub references or
            bundled with `bundle_skills=True`).
    """
    from ..skills.bank import check_pushable_references
    from ..skills.shipped import parse_skill_arguments
    from ..training.train_router import _check_skill_reference

    out = Path(output_dir)
    if router not in router_choices():
        raise ValueError(f"router={router!r}; choose from: {', '.join(router_choices())}")
    if baseline is not None and baseline not in BASELINES:
        raise ValueError(f"baseline={baseline!r}; choose from: {', '.join(BASELINES)} (or None)")
    if retrieve < 0:
        raise TaskDataError(f"--retrieve {retrieve}: pass the number of training records to retrieve (0 = off)")
    if max_length is not None and max_length < 16:
        raise TaskDataError(f"--max-length {max_length}: pass the longest training sequence in tokens (default 384)")
    from ..training.common import DEFAULT_ROUTER_MAX_LENGTH

    max_length = max_length or DEFAULT_ROUTER_MAX_LENGTH
    if eval_limit is not None and eval_limit < 1:
        raise TaskDataError(f"--eval-limit {eval_limit}: pass how many test records to score (at least 1), or omit it")
    # 1. data and skills, checked before any model loads
    names = {s: _display(src, s) for s, src in (("train", train), ("test", test), ("validation", validation))}
    train_ds, test_ds = read_split(train, "train", columns), read_split(test, "test", columns)
    validation_ds = read_split(validation, "validation", columns) if validation is not None else None
    check_splits(train_ds, test_ds, validation_ds, names=names)
    kind = kind or detect_kind(train_ds, test_ds)
    spec = task_spec(name or out.resolve().name, kind, train_ds)
    if balance_labels and kind == "generation":
        raise TaskDataError(
            "--balance-labels: this task is a generation task (free-text outputs), so there are no labels to "
            "balance; drop --balance-labels, or pass --kind label if its outputs are labels"
        )
    from ..base_model import resolve_base_model

    base = resolve_base_model(base_model)
    nearest = _nearest_baseline(kind, train_ds, test_ds, retrieve)
    memory = None
    if retrieve:
        train_ds, test_ds, validation_ds, memory = _with_retrieval(retrieve, base, train_ds, test_ds, validation_ds,
                                                                   max_length)  # fmt: skip
    skill_refs = dict(skills) if isinstance(skills, Mapping) else parse_skill_arguments(skills)
    skill_refs = {n: _check_skill_reference(n, ref) for n, ref in skill_refs.items()}
    if push_to_hub and not bundle_skills:
        try:
            check_pushable_references(skill_refs)
        except ValueError as err:
            raise TaskDataError(f"--push-to-hub: {err}") from None
    budget = {"seed": seed, **({"max_steps": max_steps} if max_steps else {"num_train_epochs": epochs})}
    _record_task(out, spec, kind, train_ds, test_ds, validation_ds, skill_refs, router, balance_labels, budget,
                 retrieve, max_length)  # fmt: skip
    if memory is not None:  # after task.json: a folder holding another run is refused before anything is written
        memory.save_pretrained(out)
    logger.info("task %s: %s", spec.name, label_summary(spec, train_ds["output"]))
    import datasets

    splits = {"train": train_ds, "test": test_ds, **({"validation": validation_ds} if validation_ds else {})}
    dataset = datasets.DatasetDict(splits)
    from .scoring import evaluate_variant

    evaluated = {"base": evaluate_variant(out, "base", spec, dataset, base, limit=eval_limit, progress=progress)}
    # 2. the router (hybrid by default) on the frozen skills
    _train_router(out, spec, dataset, skill_refs, base, router, budget, bundle_skills, balance_labels, max_length)
    evaluated["router"] = evaluate_variant(out, "router", spec, dataset, base, limit=eval_limit, progress=progress)
    # 3. what a user would pick instead
    if baseline == "task-lora":
        _train_task_lora(out, spec, dataset, base, budget, balance_labels, max_length)
        evaluated["task_lora"] = evaluate_variant(out, "task_lora", spec, dataset, base, limit=eval_limit,
                                                  progress=progress)  # fmt: skip
    from .report import write_report

    report = write_report(out, spec, kind, dataset, evaluated, router=router, retrieve=retrieve, nearest=nearest)
    if push_to_hub:
        _push(out, push_to_hub)
    return TaskRouterResult(output_dir=str(out), kind=kind, report=report)


NEAREST_VOTE = 8  # training records the no-model vote reads when the run retrieves none


def _nearest_baseline(kind: str, train, test, retrieve: int) -> dict[str, Any] | None:
    """The answers of the nearest training records for every test record, a baseline with no model (label
    tasks: the vote of `retrieve` or `NEAREST_VOTE` records; generation: the most similar record's answer; none for
    multiple choice, whose options are shuffled per record). Read from the records' own contexts, before any
    retrieval is added."""
    from collections import Counter

    from .retrieval import nearest_answers

    if kind == "multiple_choice":
        return None
    neighbours = 1 if kind == "generation" else retrieve or NEAREST_VOTE
    fallback = Counter(o.strip() for o in train["output"]).most_common(1)[0][0]  # where nothing is similar
    return {"neighbours": neighbours, "answers": nearest_answers(test.to_list(), train.to_list(), neighbours),
            "fallback": fallback}  # fmt: skip


def _with_retrieval(neighbours: int, base: str | None, train, test, validation, max_length: int | None = None):
    """`(train, test, validation, memory)`: the splits with up to `neighbours` retrieved training records in every
    context (`retrieval.py`), as many as fit the training length with room for the longest training answer, so
    training never cuts a prompt that scoring reads whole (`base=None`: all `neighbours`, unfitted, as runs made
    before the fitting did); `memory` rebuilds the same prompts at inference."""
    import datasets
    from transformers import AutoTokenizer

    from ..training.common import DEFAULT_ROUTER_MAX_LENGTH
    from .retrieval import RetrievalMemory, answer_room

    records = train.select_columns(["context", "output"]).to_list()
    tokenizer = AutoTokenizer.from_pretrained(base) if base else None
    memory = RetrievalMemory(records, neighbours)
    if tokenizer is not None:
        memory.max_length = max_length or DEFAULT_ROUTER_MAX_LENGTH
        memory.answer_tokens = answer_room(tokenizer, train["output"])
    augmented = memory.add_examples(train.to_list(), tokenizer, leave_one_out=True)
    _warn_if_trimmed(augmented, neighbours, memory.max_length)
    train_out = datasets.Dataset.from_list(augmented)
    test_out = datasets.Dataset.from_list(memory.add_examples(test.to_list(), tokenizer))
    if validation is not None:
        validation = datasets.Dataset.from_list(memory.add_examples(validation.to_list(), tokenizer))
    return train_out, test_out, validation, memory


def _warn_if_trimmed(records, neighbours: int, max_length: int | None) -> float:
    """Warn when the training prompts keep fewer than half the asked examples on average (a long fixed query leaves
    no room at the training length); returns that mean."""
    from .retrieval import count_examples

    mean = sum(count_examples(r) for r in records) / max(len(records), 1)
    if max_length is not None and mean < neighbours / 2:
        logger.warning(
            "--retrieve %d: the training prompts keep %.1f retrieved examples on average within --max-length %d "
            "(the rest would not fit, or no training record shares a word); raise --max-length to keep more",
            neighbours, mean, max_length,
        )  # fmt: skip
    return mean


def _display(source: Any, split: str) -> str:
    return os.fspath(source) if isinstance(source, (str, os.PathLike)) else f"the {split} dataset"


def _fingerprint(*splits) -> str:
    digest = hashlib.sha256()
    for split in splits:
        for record in split if split is not None else ():
            digest.update(json.dumps([record["context"], record["query"], record["output"]]).encode())
        digest.update(b"\x00")
    return digest.hexdigest()


def _record_task(
    out: Path,
    spec,
    kind: str,
    train,
    test,
    validation,
    skills: Mapping[str, str],
    router: str,
    balance_labels: bool = False,
    budget: Mapping[str, Any] | None = None,
    retrieve: int = 0,
    max_length: int | None = None,
) -> None:
    """Write `task.json`; refuse to resume into a folder that holds a run on other data, skills, router kind or
    training budget (a finished stage would otherwise be reused as if it had the new settings)."""
    from ..training.common import DEFAULT_ROUTER_MAX_LENGTH

    max_length = max_length or DEFAULT_ROUTER_MAX_LENGTH
    record = {
        "name": spec.name,
        "kind": kind,
        "labels": list(spec.labels),
        "n_train": len(train),
        "n_test": len(test),
        "n_validation": len(validation) if validation is not None else 0,
        "data_sha256": _fingerprint(train, test, validation),
        "skills": dict(sorted(skills.items())),
        "router": router,
        "balance_labels": balance_labels,
        "training": dict(budget or {}),
        "retrieve": retrieve,
        "max_length": max_length,
    }
    path = out / TASK_FILE
    if path.is_file():
        previous = json.loads(path.read_text())
        keys = ("retrieve", "max_length", "data_sha256", "kind", "skills", "router", "balance_labels", "training")
        # folders from before these were kept
        defaults = {"balance_labels": False, "training": record["training"], "retrieve": 0,
                    "max_length": DEFAULT_ROUTER_MAX_LENGTH}  # fmt: skip
        changed = [k for k in keys if previous.get(k, defaults.get(k)) != record[k]]
        if changed:
            raise TaskDataError(
                f"{out}: holds a run with other {', '.join(changed)} (task.json); pass a new --out, or delete the "
                "folder to start over"
            )
        return
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(str(path), json.dumps(record, indent=2))


def _train_router(
    out: Path, spec, dataset, skills, base: str, router: str, budget, bundle: bool, balance: bool, max_length: int
) -> None:
    from ..training.common import training_finished
    from ..training.train_router import DEFAULT_TASK_RANK, train_router

    if training_finished(out):
        return
    start = time.perf_counter()
    args = dict(budget)
    kind, task_rank = ("sequence", DEFAULT_TASK_RANK) if router == HYBRID else (router, 0)
    train_router(spec.name, skills, base, out, router=kind, task_rank=task_rank, bundle_skills=bundle,
                 training_args=args, dataset=dataset, resume_from_checkpoint=True, balance_labels=balance,
                 max_length=max_length)  # fmt: skip
    _add_seconds(out, time.perf_counter() - start)


def _train_task_lora(out: Path, spec, dataset, base: str, budget, balance: bool, max_length: int) -> None:
    """A plain LoRA r8 on the same data, steps and seed, at the hybrid's task-LoRA rate (docs/MEDICAL_VALUE.md)."""
    from ..training import train_skill
    from ..training.common import training_finished
    from ..training.train_router import TASK_LEARNING_RATE

    folder = out / TASK_LORA_DIR
    if training_finished(folder):
        return
    start = time.perf_counter()
    args = {"learning_rate": TASK_LEARNING_RATE, **budget}
    train_skill(spec.name, base, folder, peft_type="lora", training_args=args, dataset=dataset,
                max_length=max_length, resume_from_checkpoint=True, balance_labels=balance)  # fmt: skip
    _add_seconds(folder, time.perf_counter() - start)


def _add_seconds(folder: Path, seconds: float) -> None:
    """Wall time of the training stage, beside the Trainer's own numbers in train_results.json."""
    from ..training.common import RESULTS_FILE

    path = folder / RESULTS_FILE
    results = json.loads(path.read_text())
    results["stage_seconds"] = round(seconds, 1)
    atomic_write_text(str(path), json.dumps(results, indent=2))


def _push(out: Path, repo_id: str) -> None:
    """Upload the router, its card, report and figure (not checkpoints, evaluations or baselines)."""
    from huggingface_hub import HfApi

    api = HfApi()
    api.create_repo(repo_id, exist_ok=True)
    api.upload_folder(
        repo_id=repo_id,
        folder_path=str(out),
        ignore_patterns=["checkpoints/*", "baselines/*", f"{EVAL_DIR}/*", "predictions.jsonl", TASK_FILE],
        commit_message="samdkif router train",
    )
    logger.info("pushed the router to %s", repo_id)
