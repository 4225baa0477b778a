"""`train_skill`: one SA-MDKIF skill adapter with the stock `Trainer` (LoRA r8 by default, or the paper's AdaLoRA).

The default is LoRA because it was measured (docs/MEDICAL_VALUE.md): with the same data, 375 steps and rate, the
`nli` skill as LoRA r8 moved the model 5.5x further than the paper's AdaLoRA r12->8 (mean ‖ΔW‖/‖W0‖ 2.2e-2 vs
4.0e-3), ended at eval loss 0.264 vs 0.412 and scored +0.133 macro-F1 [+0.068, +0.198] on the NLI task. AdaLoRA
starts its singular values at zero and its factors at N(0, 0.02), so a short run barely leaves the base model.
`peft_type="adalora"` (CLI `--peft-type adalora`) trains the paper's recipe; the router mixes both kinds.

    path = train_skill("entity_synonymy", base_model, "skills/entity_synonymy")

The data comes from `samdkif_peft.data.load_skill` (or a `Dataset`/`DatasetDict` you pass), every record goes through
`format_example` with the loss on the answer only, and the saved adapter records the base model it was trained on,
so a skill router can check that all its skills fit one model.
"""

from __future__ import annotations

import copy
import logging
import math
import os
from collections.abc import Sequence
from typing import Any

from ..skills.fingerprint import stamp_skill
from .callbacks import AdaLoraAllocateCallback, AdaLoraCheckpointCallback
from .common import (
    DEFAULT_MAX_LENGTH,
    SKILL_TRAINING_DEFAULTS,
    build_training_arguments,
    fit_and_save,
    is_main_process,
    load_model_and_tokenizer,
    prepare_splits,
    resolve_checkpoint,
    training_seed,
    write_results,
)


logger = logging.getLogger(__name__)

# The router mixes skills per adapted module, so every skill of one router must adapt the same modules; q and v are
# the cheapest useful pair on SmolLM2 (docs/BASE_MODEL.md: AdaLoRA on all linear layers costs 2x a step).
DEFAULT_TARGET_MODULES = ("q_proj", "v_proj")


def default_lora_config(r: int = 8, lora_alpha: int = 16, target_modules: Sequence[str] = DEFAULT_TARGET_MODULES):
    """The default skill adapter: LoRA r8, alpha 16, dropout 0.05 on q and v (also the task-LoRA baseline)."""
    from peft import LoraConfig

    return LoraConfig(task_type="CAUSAL_LM", r=r, lora_alpha=lora_alpha, lora_dropout=0.05,
                      target_modules=list(target_modules))  # fmt: skip


def default_skill_config(
    total_step: int,
    *,
    init_r: int = 12,
    target_r: int = 8,
    lora_alpha: int = 16,
    target_modules: Sequence[str] = DEFAULT_TARGET_MODULES,
):
    """The paper's skill adapter (`peft_type="adalora"`): AdaLoRA from rank `init_r` pruned to `target_r` on average.

    Budget schedule: about 10% warm-up at full rank (`tinit`) and 10% at the final ranks (`tfinal`); AdaLoRA needs
    `tinit < total_step - tfinal`, which holds for any `total_step >= 1`. `AdaLoraAllocateCallback` replaces
    `total_step` by the Trainer's real step count at the start of training.
    """
    from peft import AdaLoraConfig

    if total_step < 1:
        raise ValueError(f"total_step must be >= 1, got {total_step}")
    tfinal = max(1, total_step // 10) if total_step >= 2 else 0  # >= 1: the last phase forces the final budget
    tinit = min(total_step // 10, total_step - tfinal - 1)
    return AdaLoraConfig(
        task_type="CAUSAL_LM",
        init_r=init_r,
        target_r=target_r,
        lora_alpha=lora_alpha,
        lora_dropout=0.05,
        target_modules=list(target_modules),
        total_step=total_step,
        tinit=tinit,
        tfinal=tfinal,
    )


def estimate_total_steps(args: Any, n_train: int) -> int:
    """Optimizer steps the Trainer will run for `n_train` examples (as `Trainer._get_training_steps` counts)."""
    if args.max_steps > 0:
        return int(args.max_steps)
    batches = math.ceil(n_train / (args.train_batch_size * max(1, args.world_size)))
    per_epoch = max(1, math.ceil(batches / args.gradient_accumulation_steps))
    return max(1, math.ceil(args.num_train_epochs * per_epoch))


def train_skill(
    skill: str,
    base_model: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    *,
    peft_type: str = "lora",
    peft_config: Any = None,
    training_args: Any = None,
    dataset: Any = None,
    data_dir: str | os.PathLike[str] | None = None,
    max_train_samples: int | None = None,
    max_eval_samples: int | None = None,
    balance_labels: bool = False,
    max_length: int | None = DEFAULT_MAX_LENGTH,
    dtype: Any = "bfloat16",
    tokenizer: Any = None,
    resume_from_checkpoint: bool | str | None = None,
    callbacks: Sequence[Any] = (),
) -> str:
    """Train one skill adapter on its instruction data and save it to `output_dir`; returns that path.

    Args:
        skill (`str`): a skill of `samdkif_peft.data.SKILLS` (any slug when `dataset` is given).
        base_model (`str`): folder or Hub id of the base causal LM (e.g. `prepare_base_model()`); recorded as the
            adapter's `base_model_name_or_path`.
        output_dir (`str`): where the adapter is saved; Trainer checkpoints go to `output_dir/checkpoints`.
        peft_type (`str`, *optional*, defaults to `"lora"`): `"lora"` (`default_lora_config`) or `"adalora"` (the
            paper's recipe, `default_skill_config` with `total_step` from the training arguments and data size);
            ignored when `peft_config` is given.
        peft_config (`LoraConfig` or `AdaLoraConfig`, *optional*): an explicit adapter config. AdaLoRA configs get
            `AdaLoraAllocateCallback` (rank allocation) and `AdaLoraCheckpointCallback` (resumable checkpoints).
        training_args (`TrainingArguments` or `dict`, *optional*): a dict overrides single entries of
            `SKILL_TRAINING_DEFAULTS` (e.g. `{"max_steps": 50}`); a `TrainingArguments` is used as it is.
        dataset (`Dataset` or `DatasetDict`, *optional*): records (`context`, `query`, `output`) or tokenized rows;
            defaults to `load_skill(skill, data_dir)`. The `validation` split, if any, is evaluated (loss).
        max_train_samples / max_eval_samples (`int`, *optional*): use only the first N examples of a split.
        balance_labels (`bool`, *optional*, defaults to `False`): resample the training records so every distinct
            `output` is equally frequent, at the same record count (label tasks; see `balance_by_output`).
        max_length (`int`, *optional*, defaults to 256): see `DataCollatorForCompletion`.
        dtype (*optional*, defaults to `"bfloat16"`): base model dtype; bf16 weights also turn on bf16 autocast.
        tokenizer (*optional*): defaults to the base model's own.
        resume_from_checkpoint (`bool` or `str`, *optional*): `True` resumes from the newest checkpoint in
            `output_dir/checkpoints` (or starts afresh if there is none); a path resumes from that checkpoint.
        callbacks (*optional*): extra `TrainerCallback`s.
    """
    import torch
    from peft import AdaLoraConfig, get_peft_model
    from transformers import set_seed

    if dataset is None:  # unknown or unbuilt skills fail here, before a model is loaded
        from ..data import load_skill

        dataset = load_skill(skill, data_dir)
    if peft_type not in ("lora", "adalora"):
        raise ValueError(f"peft_type must be 'lora' or 'adalora', got {peft_type!r}")
    if peft_config is not None:
        peft_config = _check_skill_config(peft_config)
    elif peft_type == "lora":
        peft_config = default_lora_config()
    model, tokenizer = load_model_and_tokenizer(base_model, dtype, tokenizer)
    train, evaluation = prepare_splits(
        dataset,
        tokenizer,
        max_length,
        max_train_samples,
        max_eval_samples,
        balance_labels,
        training_seed(training_args),
    )
    args = build_training_arguments(
        output_dir,
        training_args,
        SKILL_TRAINING_DEFAULTS,
        bf16=model.dtype == torch.bfloat16,
        has_eval=evaluation is not None,
    )
    if peft_config is None:
        peft_config = default_skill_config(estimate_total_steps(args, len(train)))
    set_seed(args.seed)  # the adapter's initial factors depend on it
    model = get_peft_model(model, peft_config)
    model.peft_config["default"].base_model_name_or_path = os.fspath(base_model)

    checkpoint = resolve_checkpoint(resume_from_checkpoint, args.output_dir)
    callbacks = list(callbacks)
    if isinstance(peft_config, AdaLoraConfig):
        if not any(isinstance(c, AdaLoraAllocateCallback) for c in callbacks):
            callbacks.append(AdaLoraAllocateCallback())  # the Trainer never calls update_and_allocate itself
        if not any(isinstance(c, AdaLoraCheckpointCallback) for c in callbacks):
            callbacks.append(AdaLoraCheckpointCallback(checkpoint))  # peft's pruned checkpoints cannot be resumed

    output_dir, summary = fit_and_save(
        model, tokenizer, args, train, evaluation, output_dir,
        max_length=max_length, checkpoint=checkpoint, callbacks=callbacks,
    )  # fmt: skip
    peft_type = str(getattr(peft_config.peft_type, "value", peft_config.peft_type))
    # routers check this against the model they mix the skill into (names alone cannot tell weights apart)
    fingerprint = stamp_skill(output_dir, model.get_base_model()) if is_main_process() else None
    write_results(output_dir, {"skill": skill, "base_model": os.fspath(base_model), "peft_type": peft_type,
                               "base_model_fingerprint": fingerprint, **summary})  # fmt: skip
    logger.info("skill %r saved to %s (%s)", skill, output_dir, summary)
    return output_dir


def _check_skill_config(peft_config: Any):
    """Refuse, before hours of training, what the skill router cannot mix (it rejects these at load time)."""
    from peft import LoraConfig

    if not isinstance(peft_config, LoraConfig):  # AdaLoraConfig is a LoraConfig
        raise TypeError(
            f"A skill must be a LoRA or AdaLoRA adapter (the skill router mixes only those), got "
            f"{type(peft_config).__name__}; pass a peft LoraConfig or AdaLoraConfig"
        )
    if getattr(peft_config, "use_dora", False):
        raise ValueError("DoRA skills cannot be mixed by the skill router; please pass use_dora=False")
    if peft_config.bias != "none":
        raise ValueError(
            f"Skills with bias={peft_config.bias!r} cannot be mixed by the skill router; pass bias='none'"
        )
    if peft_config.modules_to_save:
        raise ValueError(
            f"Skills with modules_to_save={peft_config.modules_to_save!r} cannot be mixed by the skill router (it "
            "mixes low-rank factors only); pass modules_to_save=None"
        )
    peft_config = copy.deepcopy(peft_config)  # we set task_type and base_model_name_or_path on it
    if peft_config.task_type is None:
        peft_config.task_type = "CAUSAL_LM"
    return peft_config
