"""Generate answers for task records and score them: the one evaluation loop every model variant goes through.

Greedy decoding from the shared prompt template (`format_prompt`), batched with left padding and sorted by prompt
length (padding is the main cost on a CPU), stopping at EOS or at the next `###` section a small LM starts to invent.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from tqdm.auto import tqdm

from samdkif_peft.data.tasks import TaskSpec
from samdkif_peft.data.templates import format_prompt
from samdkif_peft.evaluation.parsing import cut_generation, resolve_task
from samdkif_peft.evaluation.scoring import score_task


logger = logging.getLogger(__name__)

STOP_STRINGS = ("\n###",)  # a small LM goes on with "### Instruction:" and a made-up next example


def generate_answers(
    model: Any,
    tokenizer: Any,
    records: Sequence[Mapping[str, str]],
    *,
    batch_size: int = 16,
    max_new_tokens: int = 64,
    progress: bool = False,
    prompt_fn: Callable[[Mapping[str, str]], str] | None = None,
) -> list[str]:
    """Greedy answers (the text after the prompt, cut at the next `###` section) for `records`, in their order.

    `prompt_fn(record)` builds each model input (default `format_prompt`: the project template), e.g. the base
    model's own chat template or a few-shot prefix, so a base model gets a fair prompt.
    """
    if batch_size < 1 or max_new_tokens < 1:
        raise ValueError(f"batch_size and max_new_tokens must be >= 1, got {batch_size} and {max_new_tokens}")
    if tokenizer.pad_token_id is None:
        raise ValueError("The tokenizer has no pad token; set tokenizer.pad_token = tokenizer.eos_token")
    prompts = [(prompt_fn or format_prompt)(r) for r in records]
    encoded = tokenizer(prompts, add_special_tokens=False)["input_ids"]
    order = sorted(range(len(prompts)), key=lambda i: len(encoded[i]))
    answers: list[str] = [""] * len(prompts)
    padding_side, tokenizer.padding_side = tokenizer.padding_side, "left"  # generation continues on the right
    was_training = model.training
    model.eval()
    try:
        batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
        for batch in tqdm(batches, desc="generating", disable=not progress):
            inputs = tokenizer.pad({"input_ids": [encoded[i] for i in batch]}, return_tensors="pt")
            inputs = {k: v.to(model.device) for k, v in inputs.items()}
            with torch.no_grad():
                out = model.generate(
                    **inputs,
                    max_new_tokens=max_new_tokens,
                    do_sample=False,
                    pad_token_id=tokenizer.pad_token_id,
                    eos_token_id=tokenizer.eos_token_id,
                    stop_strings=list(STOP_STRINGS),
                    tokenizer=tokenizer,
                )
            texts = tokenizer.batch_decode(out[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
            for i, text in zip(batch, texts):
                answers[i] = cut_generation(text)
    finally:
        tokenizer.padding_side = padding_side
        model.train(was_training)
    return answers


def answer_budget(tokenizer: Any, references: Sequence[str], quantile: float = 0.99, margin: int = 4) -> int:
    """`max_new_tokens` that fits `quantile` of the reference answers plus EOS and a margin (from training data)."""
    if not references:
        raise ValueError("answer_budget needs at least one reference answer (the task's train split)")
    lengths = sorted(len(ids) for ids in tokenizer(list(references), add_special_tokens=False)["input_ids"])
    return lengths[min(len(lengths) - 1, math.ceil(quantile * len(lengths)) - 1)] + 1 + margin


def load_test_split(task: str | TaskSpec, dataset: Any = None, limit: int | None = None):
    """`(spec, dataset, test)`: the task's splits (`load_task` when `dataset` is None) and the first `limit` test
    records (the test split is already shuffled with a fixed seed at build time)."""
    spec = resolve_task(task)
    if dataset is None:
        from samdkif_peft.data import load_task

        dataset = load_task(spec.name)
    test = dataset["test"]
    if limit is not None:
        test = test.select(range(min(limit, len(test))))
    return spec, dataset, test


def evaluate_task(
    model: Any,
    tokenizer: Any,
    task: str | TaskSpec,
    dataset: Any = None,
    *,
    limit: int | None = None,
    batch_size: int = 16,
    max_new_tokens: int | None = None,
    progress: bool = False,
    prompt_fn: Callable[[Mapping[str, str]], str] | None = None,
) -> dict[str, Any]:
    """Generate and score one task's test split: `{"metrics": {...}, "n": ..., "seconds": ..., "predictions": [...]}`.

    Args:
        dataset (`datasets.DatasetDict`, *optional*): the task's splits; defaults to `load_task(task)`.
        limit (`int`, *optional*): score the first `limit` test records only (quick checks; the test split is
            already shuffled with a fixed seed at build time).
        max_new_tokens (`int`, *optional*): defaults to `answer_budget` over the task's train answers.
        prompt_fn (*optional*): `record -> model input` (see `generate_answers`); default: the project template.
    """
    spec, dataset, test = load_test_split(task, dataset, limit)
    if max_new_tokens is None:
        max_new_tokens = answer_budget(tokenizer, dataset["train"]["output"])
    start = time.perf_counter()
    predictions = generate_answers(
        model,
        tokenizer,
        test,
        batch_size=batch_size,
        max_new_tokens=max_new_tokens,
        progress=progress,
        prompt_fn=prompt_fn,
    )
    metrics = score_task(spec, predictions, test["output"], contexts=test["context"])
    seconds = time.perf_counter() - start
    logger.info("%s: %s on %d examples in %.0f s", spec.name, metrics, len(test), seconds)
    return {"metrics": metrics, "n": len(test), "seconds": seconds, "predictions": predictions}
