"""LoRAHub-style skill weights: one fixed weight per skill, found without gradients from a handful of examples.

LoRAHub (Huang et al., 2023) fits the weights of a LoRA mixture with a gradient-free optimiser (nevergrad's NGOpt,
budget 40, weights in [-1.5, 1.5], loss + 0.05 x mean |w|) on ~5-20 examples of a new task. We do the same over a
skill router's frozen skills with CMA-ES (the `cma` package; NGOpt picks CMA-like methods at this size and pulls
scipy, scikit-learn and pandas), evaluating each candidate through `force_skill_weights`, so no router is trained
and no gradient is computed. One difference: LoRAHub sums the skills' A and B matrices separately
((sum w_i B_i)(sum w_i A_i), with cross terms); the router mixes the skills' outputs (sum w_i B_i A_i), as
`add_weighted_adapter(combination_type="cat")` does.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from tqdm.auto import tqdm

from .collators import DataCollatorForCompletion


logger = logging.getLogger(__name__)


@dataclass
class SkillWeightFit:
    """What `fit_skill_weights` found: the weights, their regularised loss, and every evaluation it made."""

    weights: dict[str, float]
    loss: float  # mean answer-token loss of `weights` on the fitting examples (no penalty)
    initial_loss: float  # the same at all-zero weights, i.e. the base model
    history: list[tuple[list[float], float]] = field(default_factory=list)  # (weights, penalised objective)


@torch.no_grad()
def fit_skill_weights(
    model: Any,
    tokenizer: Any,
    records: Sequence[Mapping[str, str]],
    *,
    budget: int = 40,
    l1: float = 0.05,
    bound: float = 1.5,
    sigma: float = 0.5,
    max_examples: int = 32,
    batch_size: int = 8,
    max_length: int | None = 384,
    seed: int = 42,
    progress: bool = False,
) -> SkillWeightFit:
    """Find fixed skill weights for a task by CMA-ES on the answer loss of a few `records`.

    Args:
        model (`PeftModel`): a model with a SKILL_ROUTER adapter (any router kind); its router is bypassed.
        tokenizer: the base model's tokenizer.
        records: `context` / `query` / `output` records of the task (the first `max_examples` are used).
        budget (`int`, defaults to 40): loss evaluations, LoRAHub's default.
        l1 (`float`, defaults to 0.05): weight of the mean absolute weight in the objective (LoRAHub's).
        bound (`float`, defaults to 1.5): weights stay in [-bound, bound] (negative weights allowed, as in LoRAHub).
        sigma (`float`, defaults to 0.5): CMA-ES initial step size around the all-zero start.
        progress (`bool`, defaults to `False`): a tqdm bar over the loss evaluations.
    Returns:
        `SkillWeightFit`; use the weights with `model.base_model.force_skill_weights(fit.weights)`.
    """
    try:
        import cma
    except ImportError as err:  # pragma: no cover - cma is a dependency; this names the fix if it was removed
        raise ImportError("fit_skill_weights needs the `cma` package: pip install cma") from err
    if budget < 1:
        raise ValueError(f"budget must be at least 1 loss evaluation, got {budget}")
    records = list(records)[:max_examples]
    if not records:
        raise ValueError("fit_skill_weights needs at least one record with 'query' and 'output'")
    tuner = model.base_model
    names = list(model.peft_config[model.active_adapter].skill_names)
    collate = DataCollatorForCompletion(tokenizer, max_length=max_length)
    batches = [collate(records[i : i + batch_size]) for i in range(0, len(records), batch_size)]
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()

    def answer_loss(weights: Sequence[float]) -> float:
        total, tokens = 0.0, 0
        with tuner.force_skill_weights(list(weights)):
            for batch in batches:
                batch = {k: v.to(device) for k, v in batch.items()}
                logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
                labels = batch["labels"][:, 1:]
                loss = torch.nn.functional.cross_entropy(
                    logits[:, :-1].float().flatten(0, 1), labels.flatten(), ignore_index=-100, reduction="sum"
                )
                total, tokens = total + float(loss), tokens + int((labels != -100).sum())
        return total / max(tokens, 1)

    history: list[tuple[list[float], float]] = []
    losses: list[float] = []  # the unpenalised loss of each evaluation, so the best one is not evaluated twice
    bar = tqdm(total=budget, desc="skill weights", disable=not progress)

    def objective(weights: Sequence[float]) -> float:
        losses.append(answer_loss(weights))
        value = losses[-1] + l1 * sum(abs(w) for w in weights) / len(weights)
        history.append(([float(w) for w in weights], value))
        bar.update(1)
        bar.set_postfix(best=f"{min(v for _, v in history):.4f}")
        return value

    initial = answer_loss([0.0] * len(names))
    options = {"bounds": [-bound, bound], "maxfevals": budget, "seed": seed, "verbose": -9}
    strategy = cma.CMAEvolutionStrategy([0.0] * len(names), sigma, options)
    while not strategy.stop() and len(history) < budget:
        candidates = strategy.ask()
        if len(history) + len(candidates) > budget:  # the last generation is cut to the budget, not overrun
            for candidate in candidates[: budget - len(history)]:
                objective(candidate)
            break
        strategy.tell(candidates, [objective(c) for c in candidates])
    bar.close()
    best = min(range(len(history)), key=lambda i: history[i][1])
    model.train(was_training)
    fit = SkillWeightFit(dict(zip(names, history[best][0])), losses[best], initial, history)
    logger.info("skill weights after %d evaluations: loss %.4f (base %.4f)", len(history), fit.loss, initial)
    return fit
