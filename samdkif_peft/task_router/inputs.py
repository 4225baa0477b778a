"""Read a user's task files and refuse bad ones before any model loads, naming the file and row and the fix.

Accepted: JSONL (`.jsonl`/`.json`, one object per line), CSV (`.csv`), Parquet (`.parquet`), a folder written by
`Dataset.save_to_disk`, or a `datasets` dataset id/path with an optional split (`org/name:test`). Every record needs
`context`, `query` and `output` (`columns={"context": "note", ...}` maps other names); `context` may be empty.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any


REQUIRED_COLUMNS = ("context", "query", "output")
MIN_TRAIN_ROWS = 8
_FILE_BUILDERS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


class TaskDataError(ValueError):
    """A user's task data is unusable; the message names the file, the row and the fix (one line)."""


def parse_columns(spec: str | Mapping[str, str] | None) -> dict[str, str]:
    """`"context=note,query=question"` (or a dict) -> `{"context": "note", "query": "question"}`, checked."""
    if not spec:
        return {}
    if isinstance(spec, str):
        pairs = {}
        for part in filter(None, (p.strip() for p in spec.split(","))):
            ours, sep, theirs = part.partition("=")
            if not sep or not ours.strip() or not theirs.strip():
                raise TaskDataError(f"--columns: {part!r} is not NAME=COLUMN; e.g. context=note,query=question")
            pairs[ours.strip()] = theirs.strip()
        spec = pairs
    unknown = sorted(set(spec) - set(REQUIRED_COLUMNS))
    if unknown:
        raise TaskDataError(f"--columns: unknown field(s) {unknown}; map only {', '.join(REQUIRED_COLUMNS)}")
    return dict(spec)


def read_split(source: Any, split: str, columns: Mapping[str, str] | None = None):
    """A `datasets.Dataset` with exactly `context`, `query`, `output` (strings) from `source`, validated.

    `source` is a path (JSONL, CSV, Parquet, `save_to_disk` folder), a `datasets` id with an optional `:split`, or
    a `Dataset`/list of dicts already in memory. `split` ("train", "test", "validation") only names it in errors and
    picks the split of a multi-split dataset.
    """
    import datasets

    columns = parse_columns(columns)
    name = source if isinstance(source, (str, os.PathLike)) else f"the {split} dataset"
    rows, lines = _rows(source, split)
    if not rows:
        raise TaskDataError(f"{name}: no records; the {split} split needs at least one row")
    missing = [c for c in REQUIRED_COLUMNS if columns.get(c, c) not in rows[0]]
    if missing:
        have = ", ".join(sorted(rows[0])) or "none"
        wanted = ", ".join(columns.get(c, c) for c in missing)
        raise TaskDataError(
            f"{name}: missing column(s) {wanted} (has: {have}); rename them or map them with "
            f"--columns {','.join(f'{c}=<column>' for c in missing)}"
        )
    records = []
    for i, row in enumerate(rows):
        record = {}
        for column in REQUIRED_COLUMNS:
            value = row.get(columns.get(column, column))
            if value is None or (isinstance(value, float) and value != value):  # None or NaN (an empty CSV cell)
                value = ""
            record[column] = (value if isinstance(value, str) else str(value)).strip()
        if not record["output"].strip():
            raise TaskDataError(f"{name}: {_where(lines, i)} has an empty output; fill it in or drop the row")
        if not record["query"].strip():
            raise TaskDataError(f"{name}: {_where(lines, i)} has an empty query; every record needs an instruction")
        records.append(record)
    return datasets.Dataset.from_list(records)


def check_splits(train, test, validation=None, *, names: Mapping[str, str] | None = None) -> None:
    """Refuse too little training data and test inputs that also appear in train (a leak inflates every score)."""
    names = dict(names or {})
    if len(train) < MIN_TRAIN_ROWS:
        raise TaskDataError(
            f"{names.get('train', 'train')}: {len(train)} training rows; at least {MIN_TRAIN_ROWS} are needed to "
            "train anything (a few hundred to learn a task)"
        )
    seen = {(c.strip(), q.strip()): i for i, (c, q) in enumerate(zip(train["context"], train["query"]))}
    for split, data in (("test", test), ("validation", validation)):
        if data is None:
            continue
        for i, key in enumerate(zip(data["context"], data["query"])):
            j = seen.get((key[0].strip(), key[1].strip()))
            if j is not None:
                raise TaskDataError(
                    f"{names.get(split, split)}: row {i + 1} has the same context and query as "
                    f"{names.get('train', 'train')} row {j + 1} (a leak: the score would measure memory); remove "
                    f"it from one of the two"
                )


def _where(lines: list[int] | None, index: int) -> str:
    """`line N` of a JSONL file (1-based, as editors count, blank lines included), else `row N` (1-based)."""
    return f"line {lines[index]}" if lines else f"row {index + 1}"


def _rows(source: Any, split: str) -> tuple[list[dict[str, Any]], list[int] | None]:
    """The raw records and, for JSONL, the file line of each."""
    path = Path(os.path.expanduser(os.fspath(source))) if isinstance(source, (str, os.PathLike)) else None
    if path is not None and path.is_file() and path.suffix.lower() in (".jsonl", ".json"):
        return _read_jsonl(path)
    return _records(source, split), None


def _records(source: Any, split: str) -> list[dict[str, Any]]:
    import datasets

    if isinstance(source, datasets.DatasetDict):
        return list(_pick_split(source, split, "the dataset"))
    if isinstance(source, datasets.Dataset):
        return list(source)
    if isinstance(source, list):
        return [dict(r) for r in source]
    if not isinstance(source, (str, os.PathLike)):
        raise TaskDataError(f"{split}: expected a file path, dataset id or Dataset, got {type(source).__name__}")
    path = Path(os.path.expanduser(os.fspath(source)))
    suffix = path.suffix.lower()
    if path.is_file() and suffix in _FILE_BUILDERS:
        return _read_table(path, _FILE_BUILDERS[suffix])
    if path.is_file():
        raise TaskDataError(f"{path}: unknown file type {suffix!r}; use .jsonl, .csv or .parquet")
    if path.is_dir() and ((path / "dataset_info.json").is_file() or (path / "dataset_dict.json").is_file()):
        loaded = datasets.load_from_disk(str(path))
        return list(_pick_split(loaded, split, str(path)) if isinstance(loaded, datasets.DatasetDict) else loaded)
    looks_local = os.fspath(source).startswith((".", "/", "~")) or suffix in (".jsonl", ".json", *_FILE_BUILDERS)
    if looks_local and not path.exists():
        raise TaskDataError(f"{source}: no such file; check the path (relative to {os.getcwd()})")
    name, _, wanted = os.fspath(source).partition(":")
    try:
        loaded = datasets.load_dataset(name, split=wanted or None)
    except Exception as err:  # noqa: BLE001 - datasets raises many types; the user needs one line
        raise TaskDataError(
            f"{source}: not a file and not a loadable dataset ({type(err).__name__}: {str(err).splitlines()[0]}); "
            "pass a .jsonl/.csv/.parquet file or a datasets id such as org/name:train"
        ) from None
    return list(_pick_split(loaded, wanted or split, name) if isinstance(loaded, datasets.DatasetDict) else loaded)


def _pick_split(dataset_dict, split: str, name: str):
    if split in dataset_dict:
        return dataset_dict[split]
    if len(dataset_dict) == 1:
        return next(iter(dataset_dict.values()))
    raise TaskDataError(f"{name}: has splits {sorted(dataset_dict)} but no {split!r}; pass {name}:<split>")


def _read_jsonl(path: Path) -> tuple[list[dict[str, Any]], list[int] | None]:
    """One JSON object per line; a `.json` file holding one list of objects also works."""
    text = path.read_text(encoding="utf-8", errors="replace")
    if path.suffix.lower() == ".json" and text.lstrip().startswith("["):
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as err:
            raise TaskDataError(
                f"{path}: not valid JSON ({err.msg} at line {err.lineno}); fix or export as JSONL"
            ) from None
        if not all(isinstance(r, dict) for r in rows):
            raise TaskDataError(f"{path}: the JSON list must hold one object per record")
        return rows, None
    rows, lines = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise TaskDataError(
                f"{path}: line {number} is not valid JSON ({err.msg}); fix or delete that line"
            ) from None
        if not isinstance(row, dict):
            raise TaskDataError(f"{path}: line {number} is a {type(row).__name__}, not a JSON object of columns")
        rows.append(row)
        lines.append(number)
    return rows, lines


def _read_table(path: Path, builder: str) -> list[dict[str, Any]]:
    import datasets

    try:
        loaded = datasets.load_dataset(builder, data_files=str(path), split="train")
    except Exception as err:  # noqa: BLE001 - pyarrow/pandas parse errors come in many types
        raise TaskDataError(
            f"{path}: cannot be read as {builder} ({type(err).__name__}: {str(err).splitlines()[0]}); check the "
            "file or export it as JSONL"
        ) from None
    return list(loaded)
