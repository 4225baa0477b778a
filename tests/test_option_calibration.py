"""Benchmark helpers that read committed cells: option_calibration's pairing across folders."""

import json
import sys
from pathlib import Path

import pytest


sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
calibration = pytest.importorskip("option_calibration")

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
