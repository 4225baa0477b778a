"""The one place that turns records into model text.

Records keep the paper's uniform format (input = `context` + `query`, output = the answer). Skill training, router
training and evaluation all call `format_example` / `format_prompt`, so a prompt seen in training is byte-identical
to the one used at evaluation time. The instruction wordings are declared with each recipe (`recipes/<source>.py`).
"""

from __future__ import annotations

from collections.abc import Mapping


# Columns of every built record; `skill` for skill datasets, `task` for downstream tasks.
COLUMNS = ("context", "query", "output", "source", "key", "split", "template_id")

PROMPT_WITH_CONTEXT = "### Input:\n{context}\n\n### Instruction:\n{query}\n\n### Response:\n"
PROMPT_WITHOUT_CONTEXT = "### Instruction:\n{query}\n\n### Response:\n"


def pick_query(template: str, uid: str, fixed: bool, **fields: str) -> tuple[str, str]:
    """Query text and `template_id` (`<template>.v<i>`) of recipe `template` for a record; wording 0 when `fixed`."""
    from samdkif_peft.data.recipes import RECIPES  # recipes import the source readers; keep this module light

    return RECIPES[template].query(uid, fixed, **fields)


def format_prompt(record: Mapping[str, str]) -> str:
    """Model input text for a record (context + query), ending where the answer starts."""
    context = (record.get("context") or "").strip()
    query = record["query"].strip()
    if context:
        return PROMPT_WITH_CONTEXT.format(context=context, query=query)
    return PROMPT_WITHOUT_CONTEXT.format(query=query)


def format_example(record: Mapping[str, str]) -> tuple[str, str]:
    """`(prompt, target)` for training (loss on target only) and evaluation (compare generation to target).

    The target carries no end-of-sequence token: the collator appends the tokenizer's own.
    """
    return format_prompt(record), record["output"]


def format_messages(record: Mapping[str, str]) -> list[dict[str, str]]:
    """The same example as chat messages, for tokenizers with a chat template."""
    context = (record.get("context") or "").strip()
    user = f"{context}\n\n{record['query'].strip()}" if context else record["query"].strip()
    return [{"role": "user", "content": user}, {"role": "assistant", "content": record["output"]}]
