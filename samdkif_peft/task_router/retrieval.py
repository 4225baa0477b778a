"""Retrieved training records in the prompt: a memory the model reads instead of one it must store (`retrieve=N`).

A 135M model does not memorise a thousand drug pairs in an epoch or two, and no skill knows them: on DDI severity
every trained model sat at macro-F1 0.15-0.28 while a lookup of each drug's training labels, with no model, reached
0.55 (docs/MEDICAL_VALUE.md, sections 10 and 23). With `retrieve=N`, every record's context starts with the N
training records most similar to it (Okapi BM25 over the words of the contexts), one per line with its answer, then
the record's own context: retrieval-augmented in-context examples (Liu et al., "What Makes Good In-Context Examples
for GPT-3?", 2022), for training and scoring alike, so every model of the run (base, router, task LoRA) reads the
same prompts. Leak-free: a training record never retrieves itself; validation and test records retrieve from the
training records only. At inference, prompts need the same treatment, from the memory the run saves beside the
router: `RetrievalMemory.from_pretrained(router_dir).add_examples(new, tokenizer)`.
Each example is one line, so this suits short contexts (entities, codes, a sentence). A prompt must fit the training
length (384 tokens), or training would cut the middle of its context (`encode_completions`) while scoring reads it
whole: the least similar examples are dropped until the prompt, the longest training answer and EOS fit
(`fits_within`). The room is the longest answer for every record, never the record's own answer, so how many
examples a test prompt keeps says nothing about its answer.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


MEMORY_FILE = "retrieval_memory.jsonl"  # the training records' contexts and answers, one JSON object per line
CONFIG_FILE = "retrieval_config.json"  # neighbours and max_length
HEADER = "Similar records from the training data, with their answers:"
RECORD = "This record:"
_WORD = re.compile(r"\w+")


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


class BM25:
    """Okapi BM25 (k1 1.5, b 0.75, Lucene's non-negative idf) over a fixed list of documents.

    A word that occurs in every document (a template's "Drug A:") scores nothing, so records that share only the
    template are not similar.
    """

    def __init__(self, documents: Sequence[str], k1: float = 1.5, b: float = 0.75) -> None:
        self.docs = [Counter(_words(d)) for d in documents]
        self.lengths = [sum(d.values()) for d in self.docs]
        self.mean_length = sum(self.lengths) / max(len(self.docs), 1)
        self.postings: dict[str, list[int]] = {}  # word -> the documents that hold it
        for i, doc in enumerate(self.docs):
            for w in doc:
                self.postings.setdefault(w, []).append(i)
        n = len(self.docs)
        self.idf = {w: math.log(1 + (n - len(ids) + 0.5) / (len(ids) + 0.5)) if len(ids) < n else 0.0
                    for w, ids in self.postings.items()}  # fmt: skip
        self.k1, self.b = k1, b

    def top(self, query: str, m: int, exclude: int | None = None) -> list[int]:
        """Indices of the (at most) `m` documents with the highest positive score, best first (ties: lower index)."""
        terms = set(_words(query))
        # only documents that share a scoring word can score above 0: visit those, not the whole collection
        candidates = {i for w in terms if self.idf.get(w) for i in self.postings[w]} - {exclude}
        scored = []
        for i in candidates:
            doc = self.docs[i]
            norm = self.k1 * (1 - self.b + self.b * self.lengths[i] / self.mean_length)
            score = sum(self.idf[w] * doc[w] * (self.k1 + 1) / (doc[w] + norm) for w in terms if w in doc)
            if score > 0:
                scored.append((-score, i))
        return [i for _, i in sorted(scored)[:m]]


def _one_line(context: str) -> str:
    return "; ".join(line.strip() for line in context.splitlines() if line.strip())


def with_examples(record: Mapping[str, str], examples: Iterable[Mapping[str, str]]) -> dict[str, str]:
    """`record` with `examples` (records with an `output`) listed before its context; unchanged when there are none."""
    lines = [f"- {_one_line(e['context'])} -> {_one_line(e['output'])}" for e in examples]
    if not lines:
        return dict(record)
    return {**record, "context": "\n".join([HEADER, *lines, "", RECORD, record["context"]])}


def fits_within(tokenizer: Any, max_length: int, answer_tokens: int) -> Callable[[Mapping[str, str]], bool]:
    """A `fits` test for `add_retrieved_examples`: the record's prompt, `answer_tokens` (room for the longest
    training answer, `answer_room`) and EOS within `max_length` tokens, as the training collator counts them."""
    from ..data.templates import format_prompt

    def fits(record: Mapping[str, str]) -> bool:
        return len(tokenizer(format_prompt(record), add_special_tokens=True)["input_ids"]) + answer_tokens + 1 <= (
            max_length
        )

    return fits


def answer_room(tokenizer: Any, outputs: Sequence[str]) -> int:
    """Tokens of the longest answer in `outputs` (the training answers), as the collator tokenizes answers."""
    return max((len(ids) for ids in tokenizer(list(outputs), add_special_tokens=False)["input_ids"]), default=0)


def add_retrieved_examples(
    records: Sequence[Mapping[str, str]],
    memory: Sequence[Mapping[str, str]],
    neighbours: int,
    *,
    leave_one_out: bool = False,
    fits: Callable[[Mapping[str, str]], bool] | None = None,
    index: BM25 | None = None,
) -> list[dict[str, str]]:
    """Each of `records` with its `neighbours` most similar `memory` records (by context) and their answers in its
    context. `leave_one_out=True` when `records` is `memory` itself (the training split): record i never sees
    itself. `fits` (e.g. `fits_within(tokenizer, 384)`): drop the least similar examples until the record passes
    (a record too long even with none keeps none). `index`: a `BM25` over `memory`'s contexts, built once by the
    caller that retrieves many times."""
    if neighbours < 1:
        raise ValueError(f"neighbours={neighbours}: retrieve at least one training record, or do not retrieve")
    if leave_one_out and len(records) != len(memory):
        raise ValueError("leave_one_out=True needs records to be the memory itself (the training records)")
    index = index or BM25([m["context"] for m in memory])
    out = []
    for i, record in enumerate(records):
        examples = [memory[j] for j in index.top(record["context"], neighbours, exclude=i if leave_one_out else None)]
        augmented = with_examples(record, examples)
        while fits is not None and examples and not fits(augmented):
            examples.pop()
            augmented = with_examples(record, examples)
        out.append(augmented)
    return out


def nearest_answers(
    records: Sequence[Mapping[str, str]], memory: Sequence[Mapping[str, str]], neighbours: int
) -> list[str | None]:
    """The baseline retrieval gives with no model: per record, the most frequent answer among its `neighbours` most
    similar `memory` records (ties: the more similar record's answer); None where no memory record shares a word
    that scores. A model that reads the same neighbours should beat this vote, or it adds nothing."""
    return [vote(answers) for answers in neighbour_answers(records, memory, neighbours)]


def neighbour_answers(
    records: Sequence[Mapping[str, str]], memory: Sequence[Mapping[str, str]], neighbours: int
) -> list[list[str]]:
    """Per record, the answers of its `neighbours` most similar `memory` records (BM25), most similar first."""
    index = BM25([m["context"] for m in memory])
    return [[memory[j]["output"].strip() for j in index.top(record["context"], neighbours)] for record in records]


def vote(answers: Sequence[str]) -> str | None:
    """The most frequent of `answers` (ties: the earlier, i.e. more similar, one); None for no answers."""
    counts = Counter(answers)
    return next((a for a in answers if counts[a] == max(counts.values())), None)


def count_examples(record: Mapping[str, str]) -> int:
    """How many retrieved examples `record`'s context lists (0 without retrieval)."""
    context = record.get("context") or ""
    if not context.startswith(HEADER + "\n"):
        return 0
    block = context[len(HEADER) + 1 : context.index("\n\n" + RECORD)]
    return block.count("\n- ") + 1


@dataclass
class RetrievalMemory:
    """What a `retrieve=N` router reads at inference: its training records (context and answer), N, and the length
    its prompts were fitted to. Saved beside the router by `train_task_router`; without it, new prompts would lack
    the examples the router was trained to read."""

    records: list[dict[str, str]]
    neighbours: int
    max_length: int | None = None
    answer_tokens: int | None = None  # room kept for the answer when fitting (the longest training answer)
    _index: BM25 | None = field(default=None, init=False, repr=False, compare=False)

    def fits(self, tokenizer: Any) -> Callable[[Mapping[str, str]], bool] | None:
        """The fitting test of this memory's prompts under `tokenizer` (None: unfitted, all N examples)."""
        if tokenizer is None or self.max_length is None or self.answer_tokens is None:
            return None
        return fits_within(tokenizer, self.max_length, self.answer_tokens)

    def add_examples(
        self, records: Sequence[Mapping[str, str]], tokenizer: Any = None, *, leave_one_out: bool = False
    ) -> list[dict[str, str]]:
        """`records` as the router saw its prompts: the most similar memory records listed in each context, as many
        as fit (pass the router's tokenizer: without one, all N are listed, which a long prompt may not fit).
        `leave_one_out=True` for the memory's own records (training: record i never sees itself)."""
        if self._index is None:
            self._index = BM25([m["context"] for m in self.records])
        return add_retrieved_examples(records, self.records, self.neighbours, leave_one_out=leave_one_out,
                                      fits=self.fits(tokenizer), index=self._index)  # fmt: skip

    def save_pretrained(self, save_directory: str | os.PathLike[str]) -> None:
        folder = Path(save_directory)
        folder.mkdir(parents=True, exist_ok=True)
        rows = "".join(json.dumps({"context": r["context"], "output": r["output"]}) + "\n" for r in self.records)
        (folder / MEMORY_FILE).write_text(rows, encoding="utf-8")
        config = {"neighbours": self.neighbours, "max_length": self.max_length, "answer_tokens": self.answer_tokens,
                  "records": len(self.records)}  # fmt: skip
        (folder / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike[str], **hub_kwargs: Any) -> RetrievalMemory:
        """From a router folder or Hub repo (`hub_kwargs`: `revision`, `token`, ... for `hf_hub_download`)."""
        folder = Path(name_or_path).expanduser()
        if folder.is_dir():
            if not (folder / CONFIG_FILE).is_file():
                raise FileNotFoundError(_no_memory(str(folder), _retrieved(folder)))
            paths = folder / CONFIG_FILE, folder / MEMORY_FILE
        elif isinstance(name_or_path, os.PathLike) or str(name_or_path).startswith(("/", ".", "~")):
            raise FileNotFoundError(f"{name_or_path}: no such folder; pass a router folder or a Hub repo id")
        else:
            from huggingface_hub import hf_hub_download
            from huggingface_hub.errors import (
                EntryNotFoundError,
                HFValidationError,
                LocalEntryNotFoundError,
                RepositoryNotFoundError,
            )

            try:
                paths = tuple(Path(hf_hub_download(os.fspath(name_or_path), f, **hub_kwargs))
                              for f in (CONFIG_FILE, MEMORY_FILE))  # fmt: skip
            except LocalEntryNotFoundError:
                raise FileNotFoundError(
                    f"{name_or_path}: not a local folder, and the Hub cannot be reached to fetch {CONFIG_FILE} (set "
                    "HF_ENDPOINT, or download the router folder first)"
                ) from None
            except EntryNotFoundError:
                raise FileNotFoundError(_no_memory(str(name_or_path), None)) from None
            except (RepositoryNotFoundError, HFValidationError):
                raise FileNotFoundError(
                    f"{name_or_path}: no such folder, and no such Hub repo; pass a router folder (check the path) or "
                    "a Hub repo id"
                ) from None
        config = json.loads(paths[0].read_text(encoding="utf-8"))
        records = [json.loads(line) for line in paths[1].read_text(encoding="utf-8").splitlines() if line.strip()]
        if len(records) != config["records"]:
            raise ValueError(f"{name_or_path}: {MEMORY_FILE} holds {len(records)} records, {CONFIG_FILE} says "
                             f"{config['records']}; the folder is incomplete: copy both files again")  # fmt: skip
        return cls(records, config["neighbours"], config.get("max_length"), config.get("answer_tokens"))


def _retrieved(folder: Path) -> int:
    """The `retrieve` a `train_task_router` folder records in task.json (0 when it has none)."""
    try:
        from .run import TASK_FILE

        return int(json.loads((folder / TASK_FILE).read_text()).get("retrieve") or 0)
    except (OSError, ValueError):
        return 0


def _no_memory(where: str, retrieve: int | None) -> str:
    if retrieve:  # a --retrieve run from before the memory was saved
        return (
            f"{where} was trained with retrieve={retrieve} but holds no {CONFIG_FILE} (made before runs saved their "
            f"memory): build it from the run's training records, RetrievalMemory(train_records, {retrieve}), which "
            "lists all examples unfitted, as those runs did"
        )
    return (
        f"{where} has no {CONFIG_FILE}: it is not a router trained with retrieve=N (`samdkif router train "
        "--retrieve N`), so its prompts need no retrieved examples"
    )
