"""What skill and router training share: default `TrainingArguments`, data preparation, checkpoints and results.

Defaults are sized for SmolLM2-135M on 2 CPU cores (docs/BASE_MODEL.md): tokens/s is flat in sequence length there,
so short sequences, dynamic padding and length-grouped batches are the main lever, and bf16 is about twice fp32.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from typing import Any

from ..utils import atomic_write_text
from .collators import DataCollatorForCompletion, tokenize_dataset


logger = logging.getLogger(__name__)

# Most skill records are well under 128 tokens; 256 keeps a PubMed abstract's head and tail (the collator cuts the
# context in its middle) at 8 x 256 ~ 7 s a bf16 step on 2 cores, and short batches stay short (dynamic padding).
DEFAULT_MAX_LENGTH = 256
# Router tasks keep their whole instruction: the Elixhauser query lists all 39 flags (~300 tokens with the diagnosis).
DEFAULT_ROUTER_MAX_LENGTH = 384
CHECKPOINT_DIR = "checkpoints"  # Trainer checkpoints go below the adapter folder, so the adapter folder stays clean
RESULTS_FILE = "train_results.json"

_COMMON_DEFAULTS: dict[str, Any] = dict(
    per_device_train_batch_size=8,  # 8 x ~100 tokens ~ 1-2 s a step in bf16 on 2 cores
    per_device_eval_batch_size=16,
    num_train_epochs=1,  # 3,000 skill records / 8 = 375 steps; 2,000 task records / 8 = 250 steps
    lr_scheduler_type="cosine",
    warmup_steps=0.03,  # a float in [0, 1) is a ratio of the total steps
    weight_decay=0.0,
    logging_steps=10,
    eval_strategy="steps",  # loss on the validation split every eval_steps and at the end
    eval_steps=100,
    save_strategy="steps",  # checkpoints every save_steps, so a stopped run resumes (resume_from_checkpoint)
    save_steps=100,
    save_total_limit=2,
    train_sampling_strategy="group_by_length",  # batches of similar length: less padding, same tokens/s
    prediction_loss_only=True,  # eval needs the loss only; never gather (B, T, 49k) logits
    label_names=["labels"],  # PeftModel's forward takes **kwargs, so the Trainer cannot infer them
    report_to=[],
    seed=42,
)
# AdaLoRA/LoRA factors from scratch: 1e-3 is the usual LoRA rate for a small model and rank.
SKILL_TRAINING_DEFAULTS: dict[str, Any] = {**_COMMON_DEFAULTS, "learning_rate": 1e-3}
# A zero-initialised linear router over RMS-normalised prompt embeddings has few parameters and starts flat (the
# uniform mix): a larger rate moves it off the average within one epoch of a task.
ROUTER_TRAINING_DEFAULTS: dict[str, Any] = {**_COMMON_DEFAULTS, "learning_rate": 5e-3, "warmup_steps": 0.05}


def router_training_defaults(router: str) -> dict[str, Any]:
    """`ROUTER_TRAINING_DEFAULTS` with the rate of router kind `router` where the kind declares its own
    (`Router.learning_rate`: the static router's logits train at 0.1)."""
    from ..tuner.router import get_router

    rate = get_router(router).learning_rate
    return {**ROUTER_TRAINING_DEFAULTS, **({"learning_rate": rate} if rate is not None else {})}


def build_training_arguments(
    output_dir: str | os.PathLike[str],
    training_args: Any,
    defaults: Mapping[str, Any],
    *,
    bf16: bool,
    has_eval: bool,
):
    """`TrainingArguments` from `defaults`, updated with `training_args` (a dict), or `training_args` itself.

    A `TrainingArguments` object is used as it is (its own `output_dir` holds the checkpoints); a dict overrides
    single defaults, e.g. `{"max_steps": 50}`.
    """
    import torch
    from transformers import TrainingArguments

    if isinstance(training_args, TrainingArguments):
        return training_args
    if training_args is not None and not isinstance(training_args, Mapping):
        raise TypeError(
            f"training_args must be a transformers.TrainingArguments or a dict of overrides, got "
            f"{type(training_args).__name__}"
        )
    kwargs = {**defaults, "output_dir": os.path.join(os.fspath(output_dir), CHECKPOINT_DIR), "bf16": bf16}
    if not torch.accelerator.is_available():
        kwargs["use_cpu"] = True  # else the Trainer refuses bf16 on a CPU-only machine ("doesn't support bf16/gpu")
    if not has_eval:
        kwargs["eval_strategy"] = "no"
    kwargs.update(training_args or {})
    return TrainingArguments(**kwargs)


def load_model_and_tokenizer(base_model: str | os.PathLike[str], dtype: Any, tokenizer: Any = None):
    """Base model and tokenizer; a path that does not exist is an error here, not a failed Hub look-up later."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ..base_model import load_base_model

    name = os.fspath(base_model)
    if name.startswith((".", "/", "~")) and not os.path.isdir(os.path.expanduser(name)):
        raise FileNotFoundError(
            f"Base model {name!r} does not exist. Prepare the default one with `samdkif model prepare` (or "
            "samdkif_peft.base_model.prepare_base_model()), or pass the folder or Hub id of a causal LM."
        )
    if tokenizer is None:
        model, tokenizer = load_base_model(name, dtype=dtype)
    else:
        model = AutoModelForCausalLM.from_pretrained(name, dtype=dtype)
        if isinstance(tokenizer, (str, os.PathLike)):
            tokenizer = AutoTokenizer.from_pretrained(tokenizer)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token  # SmolLM2 does the same: padding is masked by position anyway
    return model, tokenizer


def prepare_splits(
    dataset: Any,
    tokenizer: Any,
    max_length: int | None,
    max_train_samples: int | None = None,
    max_eval_samples: int | None = None,
    balance_labels: bool = False,
    seed: int = 42,
):
    """`(train, validation or None)` tokenized; a `Dataset` is the train split alone. `balance_labels` resamples
    the training records so that each distinct `output` is equally frequent (`balance_by_output`)."""
    import datasets

    if isinstance(dataset, datasets.DatasetDict):
        if "train" not in dataset:
            raise ValueError(f"The DatasetDict has splits {sorted(dataset)}; it needs a 'train' split")
        train, evaluation = dataset["train"], dataset.get("validation")
    elif isinstance(dataset, datasets.Dataset):
        train, evaluation = dataset, None
    else:
        raise TypeError(f"Expected a datasets.Dataset or DatasetDict, got {type(dataset).__name__}")
    train = _head(train, max_train_samples, "max_train_samples")
    if len(train) == 0:
        raise ValueError("The training split is empty; build the data with `samdkif data build` or pass records")
    if balance_labels:
        train = balance_by_output(train, seed)
    evaluation = _head(evaluation, max_eval_samples, "max_eval_samples") if evaluation is not None else None
    if evaluation is not None and len(evaluation) == 0:
        evaluation = None
    train = tokenize_dataset(train, tokenizer, max_length)
    evaluation = tokenize_dataset(evaluation, tokenizer, max_length) if evaluation is not None else None
    return train, evaluation


def training_seed(training_args: Any) -> int:
    """The run's seed before `TrainingArguments` exist: a dict's `seed`, a `TrainingArguments`' own, else 42."""
    if isinstance(training_args, Mapping):
        return int(training_args.get("seed", _COMMON_DEFAULTS["seed"]))
    return int(getattr(training_args, "seed", _COMMON_DEFAULTS["seed"]))


def balance_by_output(train: Any, seed: int = 42):
    """The same number of training records, drawn so that every distinct `output` (label) is equally frequent.

    Why: a router or task LoRA trained on skewed labels learns the majority answer first and, in a short run, often
    nothing else (docs/MEDICAL_VALUE.md: DDI severity collapses to one label). Keeping the size keeps the step count,
    so balanced and plain runs compare at equal cost. Each label gets `len(train) // n_labels` records (the remainder
    to the first labels in sorted order), without replacement where it has enough, with replacement otherwise;
    the result is shuffled with `seed`.
    """
    import random

    from ..task_router.kinds import MAX_LABELS  # the same threshold decides whether a user's task is a label task

    if "output" not in train.column_names:
        raise ValueError(f"balance_labels needs records with an 'output' column, got {train.column_names}")
    by_label: dict[str, list[int]] = {}
    for i, output in enumerate(train["output"]):
        by_label.setdefault(output, []).append(i)
    if len(by_label) > MAX_LABELS:
        raise ValueError(
            f"balance_labels: the training outputs have {len(by_label)} distinct values, more than "
            f"{MAX_LABELS}, so they are not a label space to balance; train without balance_labels"
        )
    rng = random.Random(seed)
    share, extra = divmod(len(train), len(by_label))
    picked: list[int] = []
    for j, label in enumerate(sorted(by_label)):
        pool, want = by_label[label], share + (j < extra)
        picked += rng.sample(pool, want) if want <= len(pool) else pool + rng.choices(pool, k=want - len(pool))
    rng.shuffle(picked)
    logger.info("balanced %d training records over %d labels (%d each)", len(picked), len(by_label), share)
    return train.select(picked)


def _head(dataset: Any, n: int | None, what: str):
    if n is None:
        return dataset
    if n < 1:
        raise ValueError(f"{what} must be >= 1, got {n}")
    # The first n, not a random draw: skill data is already interleaved round-robin over its recipes.
    return dataset.select(range(min(n, len(dataset))))


def resolve_checkpoint(resume_from_checkpoint: bool | str | None, checkpoint_dir: str) -> str | None:
    """`True` resumes from the newest checkpoint, or starts afresh when there is none (so a pipeline can always pass
    it); a path must exist."""
    from transformers.trainer_utils import get_last_checkpoint

    if not resume_from_checkpoint:
        if os.path.isdir(checkpoint_dir) and get_last_checkpoint(checkpoint_dir) is not None:
            logger.warning(
                "%s holds checkpoints of an earlier run; this run starts afresh and writes next to them, so a later "
                "resume may pick up the old ones. Resume instead, or delete the folder.",
                checkpoint_dir,
            )
        return None
    if isinstance(resume_from_checkpoint, (str, os.PathLike)):
        path = os.fspath(resume_from_checkpoint)
        if not os.path.isdir(path):
            raise FileNotFoundError(
                f"Checkpoint {path!r} does not exist; pass resume_from_checkpoint=True to take the newest one in "
                f"{checkpoint_dir!r}"
            )
        return path
    last = get_last_checkpoint(checkpoint_dir) if os.path.isdir(checkpoint_dir) else None
    if last is None:
        logger.info("no checkpoint in %s: training from the start", checkpoint_dir)
    return last


def run_trainer(trainer: Any, checkpoint: str | None) -> dict[str, Any]:
    """Train (resuming from `checkpoint`) and return the train metrics plus the last validation loss."""
    result = trainer.train(resume_from_checkpoint=checkpoint)
    metrics = dict(result.metrics)
    metrics["global_step"] = trainer.state.global_step
    evals = [entry for entry in trainer.state.log_history if "eval_loss" in entry]
    if evals:
        metrics["eval_loss"] = evals[-1]["eval_loss"]
    return metrics


def fit_and_save(
    model: Any,
    tokenizer: Any,
    args: Any,
    train: Any,
    evaluation: Any,
    output_dir: str | os.PathLike[str],
    *,
    max_length: int | None,
    checkpoint: str | None,
    callbacks: list[Any],
    learning_rates: Mapping[str, float] | None = None,
) -> tuple[str, dict[str, Any]]:
    """Train with the stock `Trainer` and the completion collator, save the adapter; `(output_dir, run summary)`.

    The summary (data sizes, checkpoint resumed from, train metrics) is what skills and routers both record in
    `train_results.json`; callers add their own fields and write it with `write_results`.

    `learning_rates` maps a parameter-name substring to its own learning rate (e.g. the hybrid's task LoRA trains at
    the LoRA rate while its router keeps the router rate); the rest use `args.learning_rate`. The optimizer is the
    Trainer's default AdamW with those groups, passed through the stock `optimizers=` argument.
    """
    from transformers import Trainer

    optimizers = (None, None)
    if learning_rates:
        optimizers = (_grouped_adamw(model, args, learning_rates), None)
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=train,
        eval_dataset=evaluation,
        data_collator=DataCollatorForCompletion(tokenizer, max_length=max_length),
        processing_class=tokenizer,
        callbacks=callbacks,
        optimizers=optimizers,
    )
    metrics = run_trainer(trainer, checkpoint)
    output_dir = os.fspath(output_dir)
    if trainer.is_world_process_zero():  # under `accelerate launch`, one process writes the adapter
        model.save_pretrained(output_dir)
    trainer.accelerator.wait_for_everyone()
    summary = {
        "train_samples": len(train),
        "eval_samples": len(evaluation) if evaluation is not None else 0,
        "max_length": max_length,
        "resumed_from_checkpoint": checkpoint,
        **{k: getattr(args, k) for k in ("learning_rate", "per_device_train_batch_size", "seed", "world_size")},
        "lr_scheduler_type": str(getattr(args.lr_scheduler_type, "value", args.lr_scheduler_type)),
        **metrics,
    }
    return output_dir, summary


def _grouped_adamw(model: Any, args: Any, learning_rates: Mapping[str, float]):
    """AdamW (the Trainer's default optimizer and settings) with one parameter group per learning rate."""
    import torch

    groups: dict[float, list[Any]] = {}
    for name, param in model.named_parameters():
        if param.requires_grad:
            lr = next((rate for key, rate in learning_rates.items() if key in name), args.learning_rate)
            groups.setdefault(lr, []).append(param)
    return torch.optim.AdamW(
        [{"params": params, "lr": lr} for lr, params in groups.items()],
        lr=args.learning_rate,
        betas=(args.adam_beta1, args.adam_beta2),
        eps=args.adam_epsilon,
        weight_decay=args.weight_decay,
    )


def is_main_process() -> bool:
    """True in a plain run and in the main process of `accelerate launch` / torchrun (the one that writes files)."""
    from accelerate import PartialState

    return PartialState().is_main_process


def training_finished(folder: str | os.PathLike[str]) -> bool:
    """Whether a training stage is complete: `write_results` runs last, after the adapter is saved."""
    folder = os.fspath(folder)
    return os.path.isfile(os.path.join(folder, "adapter_config.json")) and os.path.isfile(
        os.path.join(folder, RESULTS_FILE)
    )


def write_results(output_dir: str, results: Mapping[str, Any]) -> None:
    """`train_results.json`, written last (it marks the stage finished) and by the main process only."""
    if not is_main_process():
        return
    atomic_write_text(os.path.join(output_dir, RESULTS_FILE), json.dumps(dict(results), indent=2, default=str) + "\n")
