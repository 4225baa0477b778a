"""The DDI knowledge skill's records (benchmarks/ddi_knowledge_skill.py) keep DDI severity unseen: no severity label,
no test-bucket pair, negatives that the thesaurus does not list, and the task's own skill-bucket pairs as positives."""

import sys
from pathlib import Path

import pytest

from samdkif_peft.data import DataBuildConfig, build, load_task
from samdkif_peft.data.splits import split_of
from samdkif_peft.data.tasks import DDI_LABELS
from tests.test_data_fixtures import make_wheels


sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
knowledge = pytest.importorskip("ddi_knowledge_skill")


@pytest.fixture(scope="module")
def fixture_build(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddi")
    wheels = make_wheels(root / "wheels")
    cfg = DataBuildConfig(wheel_dir=str(wheels), cache_dir=str(root / "cache"), out_dir=str(root / "out"),
                          allow_download=False, verify_checksums=False, skills=[], tasks=["ddi_severity"],
                          task_train_size=1000, test_size=8)  # fmt: skip
    build(cfg)
    return wheels, load_task("ddi_severity", root / "out"), knowledge.build_records(wheels)


def test_no_severity_and_no_test_pair(fixture_build):
    _, task, records = fixture_build
    test_keys = {r["key"] for r in task["test"]}
    for split, rows in records.items():
        assert rows, split
        for r in rows:
            assert r["output"] not in DDI_LABELS
            assert not any(label in r["output"].lower() for label in DDI_LABELS)
            assert r["key"] not in test_keys
            assert split_of(r["key"]) == knowledge.SPLITS[split], r["key"]


def test_positives_are_the_tasks_skill_bucket_pairs_and_negatives_are_unlisted(fixture_build):
    _, task, records = fixture_build
    skill_pairs = {r["key"] for r in task["train"] if r["split"] == "skill_train"}
    every_pair = {r["key"] for split in task.values() for r in split}
    rows = records["train"]
    positives = {r["key"] for r in rows if r["template_id"] == "ansm.interacts" and r["output"] == "yes"}
    negatives = {r["key"] for r in rows if r["template_id"] == "ansm.interacts" and r["output"] == "no"}
    assert positives == skill_pairs
    assert negatives and not negatives & every_pair
    assert {r["key"] for r in rows if r["template_id"] == "ansm.mechanism"} == skill_pairs
    # a pair's context spells the drugs as the task does, so the skill's knowledge sits on the task's own prompts
    contexts = {r["key"]: r["context"] for r in task["train"]}
    assert all(r["context"] == contexts[r["key"]] for r in rows if r["output"] == "yes")


def test_first_sentence():
    assert (
        knowledge.first_sentence("Risque  majoré\n de saignement. Surveiller l'INR.") == "Risque majoré de saignement."
    )
    assert knowledge.first_sentence("Pas de point") == "Pas de point"
    assert knowledge.first_sentence("a " * 200, limit=20).endswith(" ...")
