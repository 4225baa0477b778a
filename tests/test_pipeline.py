"""The end-to-end pipeline on tiny assets: every stage runs, every variant is scored, and a rerun trains nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from datasets import Dataset

import samdkif_peft.training
from samdkif_peft.cli import main
from samdkif_peft.pipeline import PipelineConfig, run_pipeline

from .conftest import _save_base, char_tokenizer


def _rows(prefix: str, output: str, n: int) -> list[dict]:
    return [
        {"context": f"{prefix} {i}", "query": "Answer.", "output": output, "key": f"{prefix}-{i}"} for i in range(n)
    ]


def _write(root, kind: str, name: str, output: str) -> None:
    folder = root / kind / name
    folder.mkdir(parents=True)
    for split, n in (("train", 8), ("validation", 2), ("test", 3)):
        Dataset.from_list(_rows(f"{name} {split}", output, n)).to_parquet(str(folder / f"{split}.parquet"))


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipeline")
    tok = char_tokenizer()
    base = _save_base(root / "base", vocab_size=len(tok), eos_token_id=0, pad_token_id=0, max_position_embeddings=256)
    tok.save_pretrained(base)
    data = root / "data"
    _write(data, "skills", "nli", "neutral")
    _write(data, "skills", "ner", "DRUG: x")
    _write(data, "tasks", "icd10cm_excludes_nli", "entailment")  # a seen task: nli is its skill type
    _write(data, "tasks", "ddi_severity", "contraindicated")  # an unseen task: no own_skill variant
    config = PipelineConfig(
        out_dir=str(root / "run"), skills=["nli", "ner"], tasks=["icd10cm_excludes_nli", "ddi_severity"],
        skill_max_steps=2, router_max_steps=2, eval_samples=2, eval_batch_size=2, base_model=base,
        data_dir=str(data),
    )  # fmt: skip
    return config, run_pipeline(config)


def test_every_stage_and_variant(tiny_run):
    config, summary = tiny_run
    run = json.loads((Path(config.out_dir) / "results.json").read_text())
    assert run == summary
    seen, unseen = summary["tasks"]["icd10cm_excludes_nli"], summary["tasks"]["ddi_severity"]
    assert set(seen["scores"]) == {"base", "uniform", "own_skill", "router", "hybrid", "task_lora"}
    assert set(unseen["scores"]) == {"base", "uniform", "router", "hybrid", "task_lora"}
    assert unseen["unseen"] and not seen["unseen"]
    run_dir = Path(config.out_dir)
    assert json.loads((run_dir / "hybrids" / "ddi_severity" / "adapter_config.json").read_text())["task_rank"] == 8
    assert json.loads((run_dir / "task_loras" / "ddi_severity" / "adapter_config.json").read_text())["r"] == 8
    for row in (seen, unseen):
        assert row["metric"] == "accuracy" and set(row["router_gain"]) == {"absolute", "relative"}
        for scores in row["scores"].values():
            assert scores["n"] == 2 and 0.0 <= scores["metrics"]["accuracy"] <= 1.0
            options = scores["options"]  # closed label sets are also ranked by likelihood
            assert sum(options["prediction_counts"].values()) == 2 and 0.0 <= options["accuracy"] <= 1.0
            assert options["majority"]["accuracy"] == 1.0  # every tiny record has the same label
        gain = row["scores"]["router"]["metrics"]["accuracy"] - row["scores"]["base"]["metrics"]["accuracy"]
        assert row["router_gain"]["absolute"] == pytest.approx(gain)


def test_rerun_resumes_without_training(tiny_run, monkeypatch):
    config, summary = tiny_run

    def refuse(*args, **kwargs):
        raise AssertionError("a finished stage ran again")

    monkeypatch.setattr(samdkif_peft.training, "train_skill", refuse)
    monkeypatch.setattr(samdkif_peft.training, "train_router", refuse)
    again = run_pipeline(config)
    assert again["tasks"] == summary["tasks"]


def test_bad_config_names_the_fix(capsys):
    with pytest.raises(ValueError, match=r"Unknown skill\(s\) \['nope'\]"):
        PipelineConfig(skills=["nope"])
    with pytest.raises(ValueError, match="Unknown variant"):
        PipelineConfig(variants=["oracle"])
    assert main(["pipeline", "run", "--tasks", "no_such_task"]) == 1
    assert "samdkif pipeline run: error: Unknown task(s) ['no_such_task']" in capsys.readouterr().err
