"""`DataCollatorForCompletion`: `prompt + target + eos` with the loss on the answer only, for skills and routers.

The prompt comes from `format_example`, the one template that evaluation also uses, and is tokenized on its own so
that a training prompt is token-for-token the prompt the model sees at generation time. Masking the prompt matters
twice here: the loss is on the answer only, and the sequence router routes on "the tokens before the first supervised
label" (`tuner/router.py`), so a row supervised from its first token gives the router nothing to route on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..data.templates import PROMPT_WITH_CONTEXT, format_example


IGNORE_INDEX = -100  # what transformers' causal-LM loss skips
_CONTEXT_START = PROMPT_WITH_CONTEXT.index("{context}")  # where the context sits in a formatted prompt


def encode_completions(
    records: Sequence[Mapping[str, Any]],
    tokenizer: Any,
    max_length: int | None = None,
    names: Sequence[str] | None = None,
) -> dict[str, list[list[int]]]:
    """Tokenize records into `input_ids` (`prompt + target + eos`) and `labels` (-100 on the prompt).

    Args:
        records (`Sequence[Mapping]`): rows with `query`, `output` and optionally `context` (any other keys are
            ignored).
        tokenizer (`PreTrainedTokenizerBase`): the base model's tokenizer; its EOS ends every answer.
        max_length (`int`, *optional*): longest sequence to produce. Over it, tokens are removed from the middle of
            the context first (the head and the tail of an abstract say the most), then the answer is cut at its
            end, without EOS, since the answer does not end there. The instruction and query are never cut.
        names (`Sequence[str]`, *optional*): how to name each record in errors (default: its `key`, or its index).

    Raises:
        ValueError: a record whose prompt without its context leaves no room for a single answer token within
            `max_length` (such a row could only teach the model nothing, so it is not dropped silently).
    """
    eos = _eos_token_id(tokenizer)
    prompts, targets = zip(*(format_example(r) for r in records)) if records else ((), ())
    # Offsets locate the context inside the prompt; only fast tokenizers give them.
    offsets = max_length is not None and getattr(tokenizer, "is_fast", False)
    prompt_enc = tokenizer(list(prompts), add_special_tokens=True, return_offsets_mapping=offsets)
    target_enc = tokenizer(list(targets), add_special_tokens=False)
    out: dict[str, list[list[int]]] = {"input_ids": [], "labels": []}
    for i, record in enumerate(records):
        prompt_ids, target_ids = list(prompt_enc["input_ids"][i]), [*target_enc["input_ids"][i], eos]
        if max_length is not None and len(prompt_ids) + len(target_ids) > max_length:
            span = _context_span(prompts[i], record) if offsets else None
            name = names[i] if names is not None else _record_name(record, i)
            prompt_ids, target_ids = _truncate(
                prompt_ids, target_ids, max_length, prompt_enc["offset_mapping"][i] if span else None, span, name
            )
        out["input_ids"].append(prompt_ids + target_ids)
        out["labels"].append([IGNORE_INDEX] * len(prompt_ids) + target_ids)
    return out


def _truncate(
    prompt_ids: list[int],
    target_ids: list[int],
    max_length: int,
    offsets: Sequence[tuple[int, int]] | None,
    span: tuple[int, int] | None,
    name: str,
) -> tuple[list[int], list[int]]:
    excess = len(prompt_ids) + len(target_ids) - max_length
    if span is not None and offsets is not None:
        inside = [j for j, (s, e) in enumerate(offsets) if e > s and s >= span[0] and e <= span[1]]
        if inside:
            lo, hi = inside[0], inside[-1] + 1
            keep = (hi - lo) - min(excess, hi - lo)
            head, tail = (keep + 1) // 2, keep // 2
            excess -= (hi - lo) - keep
            prompt_ids = prompt_ids[: lo + head] + prompt_ids[hi - tail : hi] + prompt_ids[hi:]
    if excess > 0:
        budget = max_length - len(prompt_ids)
        if budget < 1:
            raise ValueError(
                f"Record {name}: its prompt is {len(prompt_ids)} tokens even without its context, leaving no room "
                f"for the answer within max_length={max_length}. Raise max_length (at least {len(prompt_ids) + 1}), "
                "or shorten the record's query."
            )
        target_ids = target_ids[:budget]
    return prompt_ids, target_ids


def _context_span(prompt: str, record: Mapping[str, Any]) -> tuple[int, int] | None:
    context = (record.get("context") or "").strip()
    end = _CONTEXT_START + len(context)
    return (_CONTEXT_START, end) if context and prompt[_CONTEXT_START:end] == context else None


def _record_name(record: Mapping[str, Any], index: int) -> str:
    key = record.get("key")
    return f"key={key!r} (row {index})" if key else f"at row {index}"


def _eos_token_id(tokenizer: Any) -> int:
    eos = getattr(tokenizer, "eos_token_id", None)
    if eos is None:
        raise ValueError(
            f"Tokenizer {type(tokenizer).__name__} has no eos_token: set tokenizer.eos_token to the token that ends "
            "the model's answers (SmolLM2: '<|im_end|>')"
        )
    return int(eos)


@dataclass
class DataCollatorForCompletion:
    """
    Batches completion examples for causal-LM training with the loss on the answer only (prompt masking).

    Each feature is either a raw record (`context`, `query`, `output`, ...), tokenized here with `format_example`
    into `prompt + target + eos`, or a pre-tokenized row with `input_ids` and `labels` (from `tokenize_dataset`),
    padded as it is. Labels are -100 on the prompt and on the padding; the appended EOS keeps its label, so the model
    learns to stop. Padding is found by position (the attention mask), never by token id: SmolLM2 pads with its EOS.

    Args:
        tokenizer (`PreTrainedTokenizerBase`):
            The base model's tokenizer. Pads with `pad_token_id`, or with EOS when the tokenizer has no pad token.
        max_length (`int`, *optional*):
            Longest sequence for raw records: the context is cut in its middle first, then the answer at its end;
            a record with no room for any answer token raises `ValueError` naming it (see `encode_completions`).
            Cutting the context needs a fast tokenizer (character offsets).
        pad_to_multiple_of (`int`, *optional*):
            Round the padded length up to a multiple of this (tensor-core friendly shapes on GPUs).
        padding_side (`str`, *optional*, defaults to `"right"`):
            Right padding for training: Llama-style models number positions from 0 whatever the mask, so left
            padding would shift every prompt's positions.
        label_pad_token_id (`int`, *optional*, defaults to -100):
            Label of padding positions.
        return_tensors (`str`, *optional*, defaults to `"pt"`):
            Only `"pt"` is supported.
    """

    tokenizer: Any
    max_length: int | None = None
    pad_to_multiple_of: int | None = None
    padding_side: str = "right"
    label_pad_token_id: int = IGNORE_INDEX
    return_tensors: str = "pt"

    def __post_init__(self) -> None:
        _eos_token_id(self.tokenizer)
        if self.max_length is not None and self.max_length < 2:
            raise ValueError(f"max_length must be at least 2 (one prompt and one answer token), got {self.max_length}")
        if self.padding_side not in ("right", "left"):
            raise ValueError(f"padding_side must be 'right' or 'left', got {self.padding_side!r}")
        if self.return_tensors != "pt":
            raise ValueError(
                f"DataCollatorForCompletion returns PyTorch tensors only; got return_tensors={self.return_tensors!r}"
            )

    @property
    def pad_token_id(self) -> int:
        pad = getattr(self.tokenizer, "pad_token_id", None)
        return int(pad) if pad is not None else _eos_token_id(self.tokenizer)

    def __call__(self, features: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        rows: list[tuple[list[int], list[int]] | None] = [None] * len(features)
        raw = []
        for i, feature in enumerate(features):
            if "input_ids" in feature:
                if "labels" not in feature:
                    raise ValueError(
                        "A pre-tokenized feature has input_ids but no labels, so the prompt cannot be masked: "
                        "tokenize with samdkif_peft.training.tokenize_dataset, or pass the raw records"
                    )
                ids, labels = list(feature["input_ids"]), list(feature["labels"])
                if len(ids) != len(labels):
                    raise ValueError(f"Feature {i}: {len(ids)} input_ids but {len(labels)} labels")
                rows[i] = (ids, labels)
            elif "query" in feature and "output" in feature:
                raw.append(i)
            else:
                raise ValueError(
                    f"Feature {i} has keys {sorted(feature)}: expected a record with 'query' and 'output' (and "
                    "optionally 'context') or a tokenized row with 'input_ids' and 'labels'"
                )
        if raw:
            encoded = encode_completions([features[i] for i in raw], self.tokenizer, self.max_length)
            for j, i in enumerate(raw):
                rows[i] = (encoded["input_ids"][j], encoded["labels"][j])
        return self._pad([r for r in rows if r is not None])

    def _pad(self, rows: list[tuple[list[int], list[int]]]) -> dict[str, torch.Tensor]:
        length = max(len(ids) for ids, _ in rows)
        if self.pad_to_multiple_of:
            length = -(-length // self.pad_to_multiple_of) * self.pad_to_multiple_of
        input_ids = torch.full((len(rows), length), self.pad_token_id, dtype=torch.long)  # (B, T)
        labels = torch.full((len(rows), length), self.label_pad_token_id, dtype=torch.long)  # (B, T)
        attention_mask = torch.zeros((len(rows), length), dtype=torch.long)  # (B, T)
        for b, (ids, lab) in enumerate(rows):
            n = len(ids)
            where = slice(0, n) if self.padding_side == "right" else slice(length - n, length)
            input_ids[b, where] = torch.tensor(ids, dtype=torch.long)
            labels[b, where] = torch.tensor(lab, dtype=torch.long)
            attention_mask[b, where] = 1
        return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def tokenize_dataset(dataset: Any, tokenizer: Any, max_length: int | None = None, *, num_proc: int | None = None):
    """Map a `Dataset` (or `DatasetDict`) of records to `input_ids`/`labels` columns only, with `Dataset.map`.

    The text columns are removed, so the Trainer's `remove_unused_columns` has nothing to drop and
    `DataCollatorForCompletion` only pads. A dataset that already has `input_ids` and `labels` is returned as is.
    Truncation and errors as in `encode_completions` (a record with no room for its answer raises `ValueError`).
    """
    import datasets

    if isinstance(dataset, datasets.DatasetDict):
        return datasets.DatasetDict(
            {split: tokenize_dataset(ds, tokenizer, max_length, num_proc=num_proc) for split, ds in dataset.items()}
        )
    columns = set(dataset.column_names)
    if {"input_ids", "labels"} <= columns:
        return dataset
    if not {"query", "output"} <= columns:
        raise ValueError(
            f"Dataset has columns {sorted(columns)}: expected records with 'query' and 'output' (and optionally "
            "'context'), as built by `samdkif data build`, or tokenized rows with 'input_ids' and 'labels'"
        )
    keys = ("context", "query", "output", "key")

    def encode(batch: dict[str, list[Any]], indices: list[int]) -> dict[str, list[list[int]]]:
        records = [{k: batch[k][j] for k in keys if k in batch} for j in range(len(indices))]
        names = [_record_name(r, i) for r, i in zip(records, indices)]
        return encode_completions(records, tokenizer, max_length, names=names)

    return dataset.map(
        encode,
        batched=True,
        with_indices=True,
        remove_columns=dataset.column_names,
        num_proc=num_proc,
        desc="Tokenizing",
    )
