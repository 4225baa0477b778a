"""`train_router`: SA-MDKIF skill adaptation, a SKILL_ROUTER over frozen skills (plus, by default, a rank-8 task LoRA
trained with it: the hybrid) trained on one downstream task.

    path = train_router("elixhauser_comorbidity", {"ner": "skills/ner", "nli": "skills/nli"}, base, "routers/elix")

Only the router and the task LoRA train (parameters prefixed `skill_router_`); skills and base model stay frozen.
The same collator as skill training masks the prompt, which is also what the sequence router routes on.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .common import (
    DEFAULT_ROUTER_MAX_LENGTH,
    build_training_arguments,
    fit_and_save,
    load_model_and_tokenizer,
    prepare_splits,
    resolve_checkpoint,
    router_training_defaults,
    training_seed,
    write_results,
)


logger = logging.getLogger(__name__)

# The router alone collapsed to one label on DDI severity; router + rank-8 task LoRA beat a plain task LoRA on NLI and
# DDI severity (docs/MEDICAL_VALUE.md), so training a router trains the hybrid unless task_rank=0 is asked for.
DEFAULT_TASK_RANK = 8
# The hybrid's task LoRA rate, kept apart from the router's: 5e-3 beat 1e-3 on both tasks measured (macro-F1 0.618 vs
# 0.505 on ICD-10-CM NLI, 0.269 vs 0.202 on DDI severity; docs/MEDICAL_VALUE.md).
TASK_LEARNING_RATE = 5e-3
# The router starts from the skills' fit to the task when one skill fits it: on ICD-10-CM NLI with 64 records the
# prior (nearly all `nli`) lifted the hybrid by +0.166 macro-F1 [+0.139, +0.193]; where no skill fits better than
# all of them averaged (DDI severity, Elixhauser) it is skipped (docs/DEFAULTS.md).
DEFAULT_SKILL_PRIOR_RECORDS = 64
SKILL_PRIOR_MIN_GAIN = 0.07  # the best skill's answer loss must be 7 % below the uniform mix's (docs/DEFAULTS.md)
# ... and that gain must hold record by record: the paired t of (uniform mix - best skill) per-record losses >= 4
# (one-sided p < 0.001 at 16 records). With 16 records the 7 % rule alone fired once where no skill fits (DDI, t 2.6).
SKILL_PRIOR_MIN_T = 4.0
SKILL_PRIOR_FILE = "skill_prior.json"  # in the checkpoints folder: what a resumed run started from


def train_router(
    task: str,
    skills: Mapping[str, str | os.PathLike[str]],
    base_model: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    *,
    router: str = "sequence",
    top_k: int | None = None,
    temperature: float = 1.0,
    null_expert: bool = False,
    gate_scope: str | None = None,
    sequence_input: str | None = None,
    task_rank: int = DEFAULT_TASK_RANK,
    task_alpha: float | None = None,
    task_learning_rate: float | None = TASK_LEARNING_RATE,
    skill_prior_records: int = DEFAULT_SKILL_PRIOR_RECORDS,
    skill_prior_min_gain: float | None = None,
    skill_prior_min_t: float | None = None,
    bundle_skills: bool = False,
    training_args: Any = None,
    dataset: Any = None,
    data_dir: str | os.PathLike[str] | None = None,
    max_train_samples: int | None = None,
    max_eval_samples: int | None = None,
    balance_labels: bool = False,
    max_length: int | None = DEFAULT_ROUTER_MAX_LENGTH,
    dtype: Any = "bfloat16",
    tokenizer: Any = None,
    resume_from_checkpoint: bool | str | None = None,
    callbacks: Sequence[Any] = (),
) -> str:
    """Train a skill router for `task` over `skills` and save it to `output_dir`; returns that path.

    Args:
        task (`str`): a task of `samdkif_peft.data.TASKS` (any name when `dataset` is given).
        skills (`dict[str, str]`): skill name -> adapter folder or Hub reference (`org/repo[/sub][@rev]`), all
            trained on `base_model` (e.g. by `train_skill`).
        base_model (`str`): folder or Hub id of the skills' base model.
        output_dir (`str`): where the router is saved; Trainer checkpoints go to `output_dir/checkpoints`.
        router, top_k, temperature, null_expert, gate_scope, sequence_input, task_rank, task_alpha, bundle_skills:
            `SkillRouterConfig` settings. `task_rank` defaults to 8: a task LoRA trained jointly with the router
            (the hybrid), which beat both the router alone and a plain task LoRA in docs/MEDICAL_VALUE.md;
            `task_rank=0` trains the paper's router alone. `gate_scope` defaults to `"model"` (one gate shared by
            every module) for a sequence or static router alone and to `"module"` for the hybrid and the token
            router (`default_gate_scope`, docs/DEFAULTS.md).
        task_learning_rate (`float`, *optional*, defaults to 5e-3): the hybrid's task LoRA trains at this rate,
            the router at the training arguments' rate. `None`: one rate for both.
        skill_prior_records (`int`, *optional*, defaults to 64): start the router from the skills' fit to the task
            instead of uniform: each skill's loss alone on the first N training records gives the initial weights
            `softmax(-loss / 0.25)` (`SkillRouterModel.set_routing_prior`), used only when the best skill alone
            has a loss at least `skill_prior_min_gain` (a fraction, default `SKILL_PRIOR_MIN_GAIN` = 0.07) below the
            uniform mix of all skills and the gain holds record by record (paired t at least `skill_prior_min_t`,
            default `SKILL_PRIOR_MIN_T` = 4); else the start stays uniform (both recorded in `train_results.json`,
            and in `checkpoints/skill_prior.json` so that a resumed run reports the start it resumed). 0: always the
            uniform start (the paper's); both minimums `float("-inf")`: always the prior.
        training_args (`TrainingArguments` or `dict`, *optional*): a dict overrides single entries of
            `ROUTER_TRAINING_DEFAULTS` (whose rate, 5e-3, a router kind may replace with its own: the static
            router's logits train at 0.1); a `TrainingArguments` is used as it is.
        dataset (`Dataset` or `DatasetDict`, *optional*): defaults to `load_task(task, data_dir)`.
        Other arguments as in `train_skill`.
    """
    import torch
    from peft import get_peft_model
    from transformers import set_seed

    from ..tuner import SkillRouterConfig

    # Cheap checks first: bad skills or task names fail before the base model loads.
    config = SkillRouterConfig(
        skills={name: _check_skill_reference(name, ref) for name, ref in _as_dict(skills).items()},
        router=router,
        top_k=top_k,
        temperature=temperature,
        null_expert=null_expert,
        gate_scope=gate_scope,
        sequence_input=sequence_input,
        task_rank=task_rank,
        task_alpha=task_alpha,
        bundle_skills=bundle_skills,
        task_type="CAUSAL_LM",
    )
    if dataset is None:
        from ..data import load_task

        dataset = load_task(task, data_dir)
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
        router_training_defaults(router),
        bf16=model.dtype == torch.bfloat16,
        has_eval=evaluation is not None,
    )
    set_seed(args.seed)
    model = get_peft_model(model, config)
    checkpoint = resolve_checkpoint(resume_from_checkpoint, args.output_dir)
    prior = None
    prior_file = os.path.join(args.output_dir, SKILL_PRIOR_FILE)  # beside the checkpoints: a resumed run reports it
    if checkpoint is not None:  # a resumed run keeps the router it trained, and the start it was trained from
        prior = json.loads(Path(prior_file).read_text()) if os.path.isfile(prior_file) else None
    elif skill_prior_records > 0:
        prior = skill_prior(model, config.skill_names, tokenizer, train, skill_prior_records, max_length,
                            min_gain=skill_prior_min_gain, min_t=skill_prior_min_t)  # fmt: skip
        if prior["weights"] is not None:
            model.base_model.set_routing_prior(prior["weights"])
        os.makedirs(args.output_dir, exist_ok=True)
        Path(prior_file).write_text(json.dumps(prior, indent=1) + "\n")
    output_dir, summary = fit_and_save(
        model, tokenizer, args, train, evaluation, output_dir,
        max_length=max_length, checkpoint=checkpoint, callbacks=list(callbacks),
        learning_rates={"skill_router_task_": task_learning_rate} if task_rank and task_learning_rate else None,
    )  # fmt: skip
    write_results(
        output_dir,
        {
            "task": task,
            "skills": dict(config.skills),
            "router": router,
            "task_rank": task_rank,
            "task_learning_rate": task_learning_rate if task_rank else None,
            "skill_prior": prior,
            "base_model": os.fspath(base_model),
            "routing_summary": model.base_model.routing_summary(),
            **summary,
        },
    )
    logger.info("router for %r saved to %s (%s)", task, output_dir, summary)
    return output_dir


def _as_dict(skills: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(skills, Mapping) or not skills:
        raise ValueError(
            f"skills must be a non-empty dict of skill name -> adapter folder or Hub id, got {skills!r}; e.g. "
            "{'ner': 'skills/ner', 'nli': 'skills/nli'} (CLI: --skills ner=skills/ner nli=skills/nli)"
        )
    return dict(skills)


def _check_skill_reference(name: str, reference: str | os.PathLike[str]) -> str:
    """A local folder must exist and hold an adapter; anything else is left to the Hub resolver."""
    ref = os.fspath(reference)
    local = os.path.isdir(ref) or ref.startswith((".", "/", "~")) or os.path.exists(os.path.dirname(ref) or ref)
    if not local:
        return ref
    if not os.path.isdir(ref):
        raise FileNotFoundError(
            f"Skill {name!r}: adapter folder {ref!r} does not exist. Train it first (`samdkif train skill {name} "
            f"--out {ref}`) or fix the path."
        )
    if not os.path.isfile(os.path.join(ref, "adapter_config.json")):
        raise FileNotFoundError(
            f"Skill {name!r}: {ref!r} has no adapter_config.json, so it is not a saved peft adapter (an unfinished "
            f"training run keeps only checkpoints/). Finish it: `samdkif train skill {name} --out {ref} --resume`."
        )
    return ref


def mixture_losses(
    model: Any,
    tokenizer: Any,
    train: Any,
    records: int,
    max_length: int | None,
    mixtures: Sequence[Mapping[str, float]],
) -> tuple[list[float], list[list[float]]]:
    """The answer loss of the router model with each of `mixtures` forced (`force_skill_weights`) on the first
    `records` training rows, in eval mode without gradients (training mode restored after): per mixture, the mean of
    the batches' losses, and each record's own loss (mean over its answer tokens, from the same forward passes)."""
    import torch

    from .collators import DataCollatorForCompletion

    collator = DataCollatorForCompletion(tokenizer, max_length=max_length)
    rows = [train[i] for i in range(min(records, len(train)))]
    device = next(model.parameters()).device
    batches = [{k: v.to(device) for k, v in collator(rows[i : i + 8]).items()} for i in range(0, len(rows), 8)]
    was_training, means, per_record = model.training, [], []
    model.eval()
    with torch.no_grad():
        for weights in mixtures:
            batch_losses, record_losses = [], []
            with model.base_model.force_skill_weights(weights):
                for batch in batches:  # each batch's logits are read and dropped: (8, 384, vocab) floats
                    out = model(**batch)
                    batch_losses.append(out.loss.float())
                    record_losses += _record_losses(out.logits, batch["labels"])
                    del out
            means.append(float(torch.stack(batch_losses).mean()))
            per_record.append(record_losses)  # the same batches for every mixture: records pair up by index
    model.train(was_training)
    return means, per_record


def _record_losses(logits: Any, labels: Any) -> list[float]:
    """Each row's mean next-token loss over its answer tokens (labels != -100), as the model's own loss shifts them."""
    import torch

    labels = labels[:, 1:]
    token_losses = torch.nn.functional.cross_entropy(
        logits[:, :-1].flatten(0, 1).float(), labels.flatten(), ignore_index=-100, reduction="none"
    ).view(labels.shape)
    counts = (labels != -100).sum(dim=1)
    return [float(loss) for loss in token_losses.sum(dim=1)[counts > 0] / counts[counts > 0]]


def paired_t(better: Sequence[float], worse: Sequence[float]) -> float:
    """The paired t statistic of `worse - better` record by record: how surely `better`'s records have lower losses.
    0 with fewer than two records or no difference at all (no evidence), inf where every record gains the same."""
    import torch

    diff = torch.tensor(worse, dtype=torch.float64) - torch.tensor(better, dtype=torch.float64)
    if len(diff) < 2:
        return 0.0
    mean, spread = float(diff.mean()), float(diff.std())
    if spread == 0.0:
        return 0.0 if mean == 0.0 else math.copysign(math.inf, mean)
    return mean / (spread / len(diff) ** 0.5)


def skill_fits(
    best_loss: float, uniform_loss: float, t: float, *, min_gain: float | None = None, min_t: float | None = None
) -> bool:
    """The prior's rule: the best skill's mean loss (over batches, as the Trainer's) is at least `min_gain` (default
    `SKILL_PRIOR_MIN_GAIN`) below the uniform mix's, and the gain holds record by record: the paired t of the
    per-record losses is at least `min_t` (default `SKILL_PRIOR_MIN_T`)."""
    gain_ok = best_loss < uniform_loss * (1 - (SKILL_PRIOR_MIN_GAIN if min_gain is None else min_gain))
    return gain_ok and t >= (SKILL_PRIOR_MIN_T if min_t is None else min_t)


def skill_prior(
    model: Any,
    names: Sequence[str],
    tokenizer: Any,
    train: Any,
    records: int,
    max_length: int | None,
    sharpness: float = 0.25,
    min_gain: float | None = None,
    min_t: float | None = None,
) -> dict[str, Any]:
    """Each skill's mean answer loss alone on the first `records` training rows, and the uniform mix's (the
    router's zero-initialised start). `weights` is `softmax(-loss / sharpness)` where `skill_fits` (the best skill's
    loss at least a fraction `min_gain` below the uniform mix's, with a per-record paired t of at least `min_t`), else
    None: the prior leans the start on a skill that fits the task (a seen task's own skill) and leaves the uniform
    start alone where none does (an unseen task whose closest skill is only a format, or a gain carried by a few
    records)."""
    import torch

    uniform = {name: 1.0 / len(names) for name in names}
    (*skill_losses, uniform_loss), per_record = mixture_losses(
        model, tokenizer, train, records, max_length, [*({name: 1.0} for name in names), uniform]
    )
    best = min(range(len(names)), key=skill_losses.__getitem__)
    t = paired_t(per_record[best], per_record[-1])
    fits = skill_fits(skill_losses[best], uniform_loss, t, min_gain=min_gain, min_t=min_t)
    weights = torch.softmax(-torch.tensor(skill_losses) / sharpness, dim=0)
    logger.info(
        "skill prior from %d records: losses %s, uniform mix %.3f, best %s paired t %.2f: %s",
        min(records, len(train)), dict(zip(names, [round(x, 3) for x in skill_losses])), uniform_loss, names[best], t,
        "the router starts from the prior" if fits else "no skill fits better than the mix; uniform start",
    )  # fmt: skip
    return {
        "records": min(records, len(train)),
        "losses": dict(zip(names, skill_losses)),
        "uniform_loss": uniform_loss,
        "best": names[best],
        "paired_t": t,
        "weights": {name: float(w) for name, w in zip(names, weights)} if fits else None,
    }
