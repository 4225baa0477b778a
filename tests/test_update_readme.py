"""The README's scoreboard picks the hybrid `train_router` trains by default (scripts/update_readme.py)."""

import sys
from pathlib import Path

import pytest


sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
readme = pytest.importorskip("update_readme")

CELLS = {"hybrid@lr5e-3": {"macro_f1": 0.5}, "hybrid@prior-lr5e-3": {"macro_f1": 0.7}, "task_lora@lr5e-3": {}}


@pytest.mark.parametrize(
    ("variants", "applies", "gated", "expected"),
    [
        (CELLS, None, ("hybrid@prior-lr5e-3",), "hybrid@prior-lr5e-3"),  # a guarded-prior cell is the default
        (CELLS, False, ("hybrid@prior-lr5e-3",), "hybrid@lr5e-3"),  # ... which trained as the uniform start
        (CELLS, False, ("hybrid@priorg-lr5e-3",), "hybrid@lr5e-3"),  # an always-prior cell where no skill fits: not
        (CELLS, True, ("hybrid@priorg-lr5e-3",), "hybrid@prior-lr5e-3"),  # ... where one fits: the same training
        (CELLS, None, ("hybrid@priorg-lr5e-3",), None),  # the guard not measured: unknown
        ({"hybrid@lr5e-3": {}}, True, (), None),  # the prior applies but was not run
    ],
)
def test_default_hybrid(variants, applies, gated, expected):
    assert readme._default_hybrid(variants, applies, gated) == expected


def test_board_row_shows_the_default_beside_the_uniform_start():
    row = readme._board_row({**CELLS, "base@lr5e-3": {"macro_f1": 0.1}}, "macro_f1", "hybrid@prior-lr5e-3")
    assert (row["base_best"], row["hybrid_uniform"], row["hybrid"], row["task_lora"]) == (0.1, 0.5, 0.7, None)
    assert readme._board_row(CELLS, "macro_f1", None)["hybrid"] is None


def test_board_row_router_alone_prefers_its_one_gate_default_and_marks_the_per_module_cell():
    per_module = {**CELLS, "router@lr5e-3": {"macro_f1": 0.3}}
    row = readme._board_row(per_module, "macro_f1")
    assert (row["router"], row.get("router_mark")) == (0.3, "*")
    row = readme._board_row({**per_module, "router@gmodel-lr5e-3": {"macro_f1": 0.45}}, "macro_f1")
    assert (row["router"], row.get("router_mark")) == (0.45, None)
    assert readme._board_row(CELLS, "macro_f1")["router"] is None and "router_mark" not in readme._board_row(
        CELLS, "macro_f1"
    )


@pytest.mark.parametrize(
    ("variant", "label"),
    [
        ("hybrid@lr5e-3", "hybrid: router 5e-3 + task LoRA r8 5e-3"),
        ("hybrid@prior-lr5e-3", "hybrid: router 5e-3 + task LoRA r8 5e-3 [the default skill prior]"),
        ("task_lora@5ep", "task LoRA r8, lr 5e-3 (what a user picks instead) [5 epochs]"),
        ("task_lora", "task LoRA r8, lr 1e-3 (what a user picks instead)"),
    ],
)
def test_variant_label_names_the_rate_a_tag_trained_at(variant, label):
    """A tag that trained at 5e-3 (its name ends in lr5e-3, or it says so) shows 5e-3 in the label, not 1e-3."""
    assert readme._variant_label(variant) == label


def _row(task, seen, budget, board, pair, variants=None, default=None):
    return readme.BoardRow(task, seen, budget, "macro_f1", None, board, "-", pair, variants, default)


def test_targets_read_each_verdict_from_the_rows():
    """A collapsed label task, a hybrid under the base prompt and a few-shot tie are each reported as unmet."""
    majority = {"_baselines": {"majority": {"macro_f1": 0.2}}}
    nli = {**majority, "hybrid@prior-lr5e-3": {"macro_f1": 0.7}}
    ddi = {**majority, "hybrid@lr5e-3": {"macro_f1": 0.25}, "router@gmodel-lr5e-3": {"macro_f1": 0.1}}
    rows = [
        _row("icd10cm_excludes_nli", True, "all", {"hybrid": 0.7, "base_best": 0.3, "uniform": 0.1,
             "own_skill": 0.4}, {"difference": 0.05, "interval": [0.01, 0.09]}, nli, "hybrid@prior-lr5e-3"),
        _row("ddi_severity", False, "all", {"hybrid": 0.25, "base_best": 0.3, "uniform": 0.1},
             {"difference": 0.0, "interval": [-0.02, 0.02]}, ddi, "hybrid@lr5e-3"),
        _row("ddi_severity", False, "k=64 (3 seeds)", {}, {"difference": 0.01, "interval": [-0.01, 0.03]}),
    ]  # fmt: skip
    table = {line.split(" | ")[0].lstrip("| "): line for line in readme.targets(rows) if line.startswith("| ")}
    collapse = next(v for k, v in table.items() if k.startswith("no collapse"))
    assert "not met: 1 of 2" in collapse and "**ddi_severity 0.250 / 0.100 vs 0.300**" in collapse
    assert "not met: 1 of 2" in next(v for k, v in table.items() if "base model" in k)
    assert "**met**: 1 of 1" in next(v for k, v in table.items() if k.startswith("the hybrid matches"))
    few = next(v for k, v in table.items() if "k <= 64" in k)
    assert "not met: 0 of 1" in few
