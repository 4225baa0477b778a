"""Benchmark helpers that read committed cells or rewrite a user's files: option_calibration's pairing across folders
and retrieval_demos' leak-free neighbours."""

import json
import sys
from pathlib import Path

import pytest


sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
calibration = pytest.importorskip("option_calibration")
retrieval = pytest.importorskip("retrieval_demos")

LABELS = ["contraindicated", "not recommended", "precaution for use", "take into account"]


def _cell(path: Path, predictions: list[str], references: list[str]) -> Path:
    scores = [[0.0 if label == p else -1.0 for label in LABELS] for p in predictions]
    cell = {"n": len(references), "references": references, "predictions": predictions, "options": [LABELS] * len(
        references), "option_scores": scores}  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(cell))
    return path


def _row(root: Path, path: Path) -> dict:
    return {"variant": path.stem, "root": str(root), "cell": str(path.relative_to(root))}


def test_pooled_pairs_a_variant_with_a_baseline_in_another_folder(tmp_path):
    references = ["contraindicated", "not recommended", "precaution for use", "take into account"] * 5
    mine, theirs = tmp_path / "mine", tmp_path / "theirs"
    cell = _cell(mine / "k=64/seed=1/ddi_severity/hybrid@lr5e-3.json", references, references)
    _cell(theirs / "k=64/seed=1/ddi_severity/task_lora@lr5e-3.json", ["precaution for use"] * 20, references)
    result = calibration.pooled([_row(mine, cell)], mine, "hybrid@lr5e-3", baseline_root=theirs, n_resamples=50)
    raw = result["k=64 ddi_severity"]["raw"]
    assert result["k=64 ddi_severity"]["seeds"] == 1
    assert raw["variant"] == pytest.approx(1.0)
    assert raw["baseline"] == pytest.approx(0.1)  # one label of four right on a quarter of the records: F1 0.4 / 4
    assert raw["difference"] == pytest.approx(0.9)
    assert calibration.pooled([_row(mine, cell)], mine, "hybrid@lr5e-3", n_resamples=50) == {}  # no baseline here


def test_pooled_refuses_cells_scored_on_different_test_records(tmp_path):
    references = LABELS * 3
    cell = _cell(tmp_path / "a/k=64/seed=1/ddi_severity/hybrid@lr5e-3.json", references, references)
    _cell(tmp_path / "b/k=64/seed=1/ddi_severity/task_lora@lr5e-3.json", references, references[::-1])
    with pytest.raises(ValueError, match="different test records"):
        calibration.pooled([_row(tmp_path / "a", cell)], tmp_path / "a", "hybrid@lr5e-3", baseline_root=tmp_path / "b")


def test_retrieval_never_returns_the_record_itself_and_ranks_shared_words_first():
    contexts = ["Drug A: warfarin\nDrug B: aspirin", "Drug A: warfarin\nDrug B: fluconazole",
                "Drug A: digoxin\nDrug B: amiodarone", "Drug A: aspirin\nDrug B: ibuprofen"]  # fmt: skip
    index = retrieval.BM25(contexts)
    assert index.top(contexts[0], 3, exclude=0) == [1, 3]  # both share one rare drug; the unrelated pair scores 0
    assert 0 not in index.top(contexts[0], 10, exclude=0)
    assert index.top(contexts[0], 1)[0] == 0  # a test record may match a training record exactly (no exclusion)
    assert index.top("Drug A: metformin", 5) == []  # "drug" and "a" are in every record, so nothing is similar


def test_augmented_context_lists_the_neighbours_answers_before_the_record():
    record = {"context": "Drug A: warfarin\nDrug B: aspirin", "query": "How severe?", "output": "not recommended"}
    demo = {"context": "Drug A: warfarin\nDrug B: fluconazole", "query": "How severe?", "output": "contraindicated"}
    out = retrieval.augment(record, [demo])
    assert out["query"] == record["query"] and out["output"] == record["output"]
    assert "- Drug A: warfarin; Drug B: fluconazole -> contraindicated" in out["context"]
    assert out["context"].endswith("This record:\n" + record["context"])
    assert retrieval.augment(record, []) == record
