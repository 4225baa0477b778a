"""Put the most similar training records, with their answers, into each record's context (a lever, not a default).

    python benchmarks/retrieval_demos.py --data runs/ddi/data --out runs/ddi-retrieval/data [--neighbours 4]
    samdkif router train --train runs/ddi-retrieval/data/train.jsonl ... --baseline task-lora

The drug lookup (`lookup_baseline.py`, no language model) reaches macro-F1 0.547 on DDI severity, where every trained
model sits at 0.15-0.28: a 135M model does not memorise 1,239 drug pairs from one or two epochs, and no skill knows
them. This writes the user's JSONL files again with the `--neighbours` training records most similar to each record
(BM25 over the words of the contexts) listed, with their answers, before the record's own context, so that the model
can read the memory it failed to store: retrieval-augmented in-context demonstrations (Liu et al., "What Makes Good
In-Context Examples for GPT-3?", 2022). Leak-free: a training record never retrieves itself, and validation and test
records retrieve from the training file only. Every model of `samdkif router train` (base, hybrid, task LoRA) then
reads the same augmented prompts.
"""

from __future__ import annotations

import argparse
import json
import math
import re
from collections import Counter
from pathlib import Path


WORD = re.compile(r"\w+")


def words(text: str) -> list[str]:
    return WORD.findall(text.lower())


class BM25:
    """Okapi BM25 (k1 1.5, b 0.75, the non-negative idf of Lucene) over a fixed list of documents."""

    def __init__(self, documents: list[str], k1: float = 1.5, b: float = 0.75) -> None:
        self.docs = [Counter(words(d)) for d in documents]
        self.lengths = [sum(d.values()) for d in self.docs]
        self.mean_length = sum(self.lengths) / max(len(self.docs), 1)
        frequency = Counter(w for d in self.docs for w in d)
        n = len(self.docs)
        # a word in every document (the template's "Drug A:") tells no record apart: it scores nothing
        self.idf = {w: math.log(1 + (n - f + 0.5) / (f + 0.5)) if f < n else 0.0 for w, f in frequency.items()}
        self.k1, self.b = k1, b

    def top(self, query: str, m: int, exclude: int | None = None) -> list[int]:
        terms = set(words(query))
        scores = []
        for i, (doc, length) in enumerate(zip(self.docs, self.lengths)):
            if i == exclude:
                continue
            norm = self.k1 * (1 - self.b + self.b * length / self.mean_length)
            score = sum(self.idf[w] * doc[w] * (self.k1 + 1) / (doc[w] + norm) for w in terms if w in doc)
            if score > 0:
                scores.append((-score, i))
        return [i for _, i in sorted(scores)[:m]]


def one_line(context: str) -> str:
    return "; ".join(line.strip() for line in context.splitlines() if line.strip())


def augment(record: dict, demos: list[dict]) -> dict:
    if not demos:
        return record
    lines = ["Similar records from the training data, with their answers:"]
    lines += [f"- {one_line(d['context'])} -> {d['output']}" for d in demos]
    lines += ["", "This record:", record["context"]]
    return {**record, "context": "\n".join(lines)}


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="folder with train.jsonl (validation, test optional)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--neighbours", type=int, default=4)
    args = parser.parse_args()
    train = read_jsonl(args.data / "train.jsonl")
    index = BM25([r["context"] for r in train])
    args.out.mkdir(parents=True, exist_ok=True)
    for split in ("train", "validation", "test"):
        path = args.data / f"{split}.jsonl"
        if not path.is_file():
            continue
        records = train if split == "train" else read_jsonl(path)
        found = 0
        with (args.out / f"{split}.jsonl").open("w") as f:
            for i, record in enumerate(records):
                hits = index.top(record["context"], args.neighbours, exclude=i if split == "train" else None)
                found += bool(hits)
                f.write(json.dumps(augment(record, [train[j] for j in hits])) + "\n")
        print(f"{split}: {len(records)} records, {found} with at least one similar training record")


if __name__ == "__main__":
    main()
