"""The rare-disease knowledge skill's records (benchmarks/rare_disease_knowledge_skill.py) hold the annotations of
every disease the test items name, all four options alike, and none of the task's own records: no phenotype sample,
no options, no letter, nothing from phenotypes to a disease; the held-out diseases are ones no item names."""

import re
import sys
from pathlib import Path

import pytest

from samdkif_peft.data import DataBuildConfig, build, load_task
from tests.test_data_fixtures import make_wheels


sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
knowledge = pytest.importorskip("rare_disease_knowledge_skill")


@pytest.fixture(scope="module")
def fixture_build(tmp_path_factory):
    root = tmp_path_factory.mktemp("rare")
    wheels = make_wheels(root / "wheels")
    out = root / "out"
    cfg = DataBuildConfig(wheel_dir=str(wheels), cache_dir=str(root / "cache"), out_dir=str(out),
                          allow_download=False, verify_checksums=False, skills=[], tasks=[knowledge.TASK],
                          task_train_size=8, test_size=4)  # fmt: skip
    build(cfg)
    index = knowledge.hpo_index(wheels)
    records = knowledge.build_records(wheels, out, n_validation=3)
    return (
        index,
        load_task(knowledge.TASK, out),
        records,
        knowledge.build_records(wheels, out, n_validation=3, control=True),
        knowledge.build_records(wheels, out, n_validation=3, direction="reverse"),
    )


def test_every_option_of_the_test_items_is_covered_and_nothing_of_the_task_is_copied(fixture_build):
    index, task, records, *_ = fixture_build
    assert task["test"].num_rows > 0
    train_names = {r["context"].removeprefix("Disease: ").lower() for r in records["train"]}
    assert knowledge.option_names(task["test"]) <= train_names
    assert knowledge.option_names(task["train"]) <= train_names  # the few-shot cells' records (k >= the fixture's 8)
    assert {r["key"] for r in records["train"]} == {f"disease-name:{n}" for n in train_names}
    for r in records["train"] + records["validation"]:
        assert r["context"].startswith("Disease: ") and "\n" not in r["context"]
        assert not re.search(r"\([A-D]\)|Options|Patient phenotypes", r["context"] + r["output"])
        assert r["template_id"] == "hpo.disease_profile"


def test_profiles_are_the_annotated_features_and_held_out_diseases_are_named_by_no_item(fixture_build):
    index, task, records, *_ = fixture_build
    annotated: dict[str, set[str]] = {}
    for d in index.diseases.values():
        annotated.setdefault(d.name.lower(), set()).update(index.terms[h].name for h in d.features)
    shown: dict[str, list[str]] = {}
    for r in records["train"] + records["validation"]:
        shown.setdefault(r["context"].removeprefix("Disease: ").lower(), []).extend(r["output"].split("; "))
    for name, features in shown.items():
        assert len(features) == len(set(features)) == min(knowledge.MAX_FEATURES, len(annotated[name]))
        assert set(features) <= annotated[name]
    held_out = {r["key"] for r in records["validation"]}
    assert held_out and not held_out & {r["key"] for r in records["train"]}
    named = knowledge.option_names(r for split in task.values() for r in split)
    assert not {k.removeprefix("disease-name:") for k in held_out} & named


def profiles(rows) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for r in rows:
        out.setdefault(r["context"], set()).update(r["output"].split("; "))
    return out


def test_the_control_has_the_same_names_and_profiles_but_no_true_pairing(fixture_build):
    _, _, records, control, _ = fixture_build
    true, shifted = profiles(records["train"]), profiles(control["train"])
    assert len(true) > 1 and true.keys() == shifted.keys()
    assert sorted(map(sorted, true.values())) == sorted(map(sorted, shifted.values()))
    assert all(shifted[name] != true[name] for name in true)
    assert control["validation"] == records["validation"]  # the held-out diseases keep their true profiles


def test_partners_is_a_seeded_derangement_that_avoids_shared_features():
    # two near-identical subtypes side by side in sorted order, as in HPO: a shift would pair them
    features = {"a1": ["x", "y"], "a2": ["x", "y"], "b": ["p"], "c": ["q"], "d": ["r"], "e": ["s"]}
    names = sorted(features)
    for seed in range(20):
        out = knowledge.partners(names, features, seed)
        assert sorted(out) == names and sorted(out.values()) == names
        assert all(partner != name for name, partner in out.items())
        assert not set(features[out["a1"]]) & {"x", "y"} and not set(features[out["a2"]]) & {"x", "y"}
    assert knowledge.partners(names, features, 0) == knowledge.partners(names, features, 0)
    assert len({tuple(sorted(knowledge.partners(names, features, s).items())) for s in range(20)}) > 1


def test_the_lookup_answers_from_the_annotations_and_only_from_them(fixture_build):
    index, task, *_ = fixture_build
    features = knowledge.merged_features(index)
    test = list(task["test"])
    assert test
    assert knowledge.lookup_predictions(test, index, features) == [r["output"] for r in test]
    for record in test:  # the answer's annotations taken away: another option wins
        answer = record["output"].split(") ", 1)[1].lower()
        blind = {**features, answer: []}
        assert knowledge.lookup_predictions([record], index, blind) != [record["output"]]


def test_the_reverse_records_hold_the_same_pairs_indexed_the_tasks_way(fixture_build):
    """Feature -> diseases: exactly the forward records' name-feature pairs, nothing of the task's items; held-out
    records name only held-out diseases."""
    _, _, records, _, reverse = fixture_build

    def pairs(rows, forward: bool) -> set[tuple[str, str]]:
        if forward:
            return {(r["context"].removeprefix("Disease: "), f) for r in rows for f in r["output"].split("; ")}
        return {(d, r["context"].removeprefix("Phenotype: ")) for r in rows for d in r["output"].split("; ")}

    assert pairs(reverse["train"], False) == pairs(records["train"], True)
    assert pairs(reverse["validation"], False) <= pairs(records["validation"], True)
    for r in reverse["train"] + reverse["validation"]:
        assert r["template_id"] == "hpo.phenotype_diseases" and r["key"].startswith("phenotype:")
        assert 1 <= len(r["output"].split("; ")) <= knowledge.CHUNK and "\n" not in r["context"]
        assert not re.search(r"\([A-D]\)|Options|Patient phenotypes", r["context"] + r["output"])
    with pytest.raises(ValueError, match="direction"):
        knowledge.build_records(direction="backward")
