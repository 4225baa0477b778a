"""Leakage check run at the end of every build (docs/DATA.md, "Splits and leakage"); any hit fails the build."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from samdkif_peft.data.splits import TRAINING_SPLITS, split_of


class LeakageError(ValueError):
    """Test entities or answers reached training data."""


_PUNCT = re.compile(r"[^\w\s]")


def _normalize(text: str) -> str:
    """Lower case, punctuation as spaces: a test answer differing from a training one only in form still leaks."""
    return " ".join(_PUNCT.sub(" ", text.lower()).split())


def check_leakage(datasets: Mapping[str, Iterable[Mapping[str, str]]], salt: str) -> dict[str, int]:
    """Raise `LeakageError` if a test key is in any training split, a test output equals a training output for the same
    key, or a record's split disagrees with its key's hash bucket. Returns counts of keys checked."""
    train_keys: dict[str, str] = {}
    train_outputs: set[tuple[str, str]] = set()
    test_records: list[tuple[str, Mapping[str, str]]] = []
    problems: list[str] = []
    for name, records in datasets.items():
        for rec in records:
            expected = split_of(rec["key"], salt)
            if rec["split"] != expected:
                problems.append(f"{name}: key {rec['key']!r} is in split {rec['split']!r} but hashes to {expected!r}")
            if rec["split"] in TRAINING_SPLITS:
                train_keys.setdefault(rec["key"], name)
                train_outputs.add((rec["key"], _normalize(rec["output"])))
            else:
                test_records.append((name, rec))
    test_keys = set()
    for name, rec in test_records:
        test_keys.add(rec["key"])
        if rec["key"] in train_keys:
            problems.append(f"{name}: test key {rec['key']!r} also trains {train_keys[rec['key']]}")
        if (rec["key"], _normalize(rec["output"])) in train_outputs:
            problems.append(f"{name}: test output for {rec['key']!r} equals a training output for the same key")
    if problems:
        shown = "\n  ".join(problems[:10])
        raise LeakageError(
            f"Leakage check failed with {len(problems)} problem(s):\n  {shown}\nFix: keep split assignment to "
            "`splits.split_of(key)` and give every record the key of its knowledge unit."
        )
    return {"train_keys": len(train_keys), "test_keys": len(test_keys)}
