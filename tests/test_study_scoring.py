"""The study's open-answer scoring (benchmarks/study_label_tasks.py): its per-record rows aggregate to exactly what
the packaged metrics compute, its pairing is a difference of those numbers, and its no-model rules do what they say."""

import json
import sys
from pathlib import Path

import pytest

from samdkif_peft.data import TASKS
from samdkif_peft.evaluation.scoring import score_task


sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
study = pytest.importorskip("study_label_tasks")

CASES = {
    "drug_disease_ner": (
        ["DRUG: aspirin\nDISEASE: fever", "DISEASE: asthma", "none", "DRUG: insulin\nDRUG: metformin"],
        ["DRUG: aspirin\nDISEASE: headache", "DISEASE: asthma", "DRUG: heparin", "DRUG: insulin"],
    ),
    "elixhauser_comorbidity": (
        ["DEMENTIA; HYPERTENSION", "none", "DIABETES", "OBESITY"],
        ["DEMENTIA", "none", "DIABETES; OBESITY", "OBESITY"],
    ),
    "pubmed_conclusion_extraction": (
        ["The drug works.", "Nothing was found", "", "Results were mixed in older adults."],
        ["The drug works.", "Nothing was found.", "A clear benefit.", "Results were mixed."],
    ),
    "hpo_definition_qa": (
        ["An abnormality of the eye.", "A tumor", "x", "Reduced muscle tone in infancy."],
        ["Any abnormality of the eye.", "A benign tumor of fat.", "Short stature.", "Reduced muscle tone."],
    ),
}


def _records(outputs):
    return {"output": outputs, "context": ["The abstract."] * len(outputs)}


@pytest.mark.parametrize("task", list(CASES))
def test_rows_aggregate_to_the_packaged_metrics(task):
    spec = TASKS[task]
    predictions, references = CASES[task]
    test = _records(references)
    rows = study.record_rows(spec, predictions, test)
    expected = score_task(spec, predictions, references, contexts=test["context"])
    assert study.aggregate(spec, rows) == pytest.approx(expected, abs=1e-12)


def test_pairing_is_the_difference_and_zero_for_a_model_against_itself():
    spec = TASKS["drug_disease_ner"]
    predictions, references = CASES["drug_disease_ner"]
    test = _records(references)
    a, b = study.record_rows(spec, predictions, test), study.record_rows(spec, references, test)
    diff = study.paired_generated(spec, a, b, n_resamples=50)["micro_f1"]
    assert diff["difference"] == pytest.approx(study.aggregate(spec, a)["micro_f1"] - 1.0)
    assert diff["interval"][1] < 0  # the references are perfect on every resample
    same = study.paired_generated(spec, a, a, n_resamples=50)["micro_f1"]
    assert same["difference"] == 0 and same["interval"] == [0, 0]


def test_report_counts_answers_and_baselines():
    spec = TASKS["pubmed_conclusion_extraction"]
    references = ["The drug works.", "Nothing was found."]
    test = {"output": references, "context": ["METHODS: We did.\nCONCLUSIONS: The drug works.", "Nothing was found."]}
    train = {"output": ["Nothing was found.", "Nothing was found.", "Other."]}
    report = study.generated_report(spec, ["Same.", "Same."], test, train)
    assert report["prediction_counts"] == {"Same.": 2} and report["distinct_predictions"] == 1
    assert report["baselines"]["majority"]["exact_match"] == 0.5
    assert report["baselines"]["heuristic"]["exact_match"] == 1.0  # the last section, label stripped
    assert report["intervals"]["exact_match"] == [0.0, 0.0]


def test_dictionary_rule_finds_training_mentions_longest_first():
    test = {"context": ["Aspirin and low-dose aspirin reduce fever; no asthma."]}
    train = {"output": ["DRUG: aspirin", "DRUG: low-dose aspirin\nDISEASE: fever"]}
    (answer,) = study._dictionary_entities(test, train)
    assert answer.splitlines() == ["DRUG: Aspirin", "DRUG: low-dose aspirin", "DISEASE: fever"]


def test_dictionary_rule_without_mentions_and_with_unicode_case_folding():
    assert study._dictionary_entities({"context": ["text", "more"]}, {"output": ["none"]}) == ["", ""]
    # the case-insensitive match of "ſtatins" lower-cases to a string the lexicon does not hold: skipped, no KeyError
    assert study._dictionary_entities({"context": ["ſtatins; statins"]}, {"output": ["DRUG: statins"]}) == [
        "DRUG: statins"
    ]


def test_majority_label_set_ignores_order():
    spec = TASKS["elixhauser_comorbidity"]
    train = {"output": ["OBESITY; DEMENTIA", "DEMENTIA; OBESITY", "DIABETES"], "context": [""] * 3}
    test = {"output": ["DEMENTIA; OBESITY", "DIABETES"], "context": [""] * 2}
    report = study.generated_report(spec, ["none", "none"], test, train)
    assert report["baselines"]["majority"]["exact_match"] == 0.5


def test_nearest_code_rule_takes_the_longest_shared_prefix_then_the_most_frequent_answer():
    codes = ("E11.9", "E11.65", "E10.9", "I50.9", "I50.1", "Z00")
    train = {
        "context": [f"Diagnosis: x (ICD-10-CM {code})" for code in codes],
        "output": ["DIAB_UNCX", "DIAB_CX", "DIAB_UNCX", "HF", "HF", "none"],
    }
    test = {"context": ["Diagnosis: x (ICD-10-CM E11.641)", "Diagnosis: y (ICD-10-CM I51)", "no code at all"]}
    # E11.641 shares "E116" with E11.65 only; I51 shares "I5" with both heart-failure codes; no code: all tie
    assert study._nearest_code(test, train) == ["DIAB_CX", "HF", "DIAB_UNCX"]


def test_pooled_few_shot_difference_is_the_seed_mean_with_one_shared_bootstrap(tmp_path):
    """`few_shot_curve.pooled_differences`: with one seed it is that seed's paired difference; with two it is their
    mean, and its interval comes from resampling the same test records in both seeds."""
    import json

    from samdkif_peft.evaluation.likelihood import paired_difference

    curve = pytest.importorskip("few_shot_curve")
    references = ["a", "b", "c", "a", "b", "c", "a", "a"] * 5
    runs = {
        1: (["a", "b", "c", "a", "b", "b", "a", "a"] * 5, ["a"] * 40),
        2: (["a", "b", "b", "a", "c", "c", "a", "b"] * 5, ["a", "b"] * 20),
    }

    def write(seeds):
        for seed in seeds:
            folder = tmp_path / "few_shot" / "k=16" / f"seed={seed}" / "ddi_severity"
            folder.mkdir(parents=True, exist_ok=True)
            for variant, predictions in zip(("hybrid", "task_lora"), runs[seed]):
                result = {"predictions": predictions, "references": references}
                (folder / f"{variant}@lr5e-3.json").write_text(json.dumps(result))
        return curve.pooled_differences(root=tmp_path, n_resamples=200)["k=16"]["ddi_severity"]

    one = write([1])
    alone = paired_difference(*runs[1], references, n_resamples=200)["macro_f1"]
    assert one["seeds"] == 1 and one["difference"] == pytest.approx(alone["difference"])
    assert one["interval"] == pytest.approx(alone["interval"])
    two = write([1, 2])
    second = paired_difference(*runs[2], references)["macro_f1"]["difference"]
    assert two["seeds"] == 2 and two["per_seed"] == pytest.approx([alone["difference"], second])
    assert two["difference"] == pytest.approx((alone["difference"] + second) / 2)
    assert two["interval"][0] <= two["difference"] <= two["interval"][1]
    assert json.loads((tmp_path / "few_shot_pooled.json").read_text())["k=16"]["ddi_severity"]["seeds"] == 2
    # `a` read from another study's folder (e.g. over other skills): the same pairing, written where asked
    for seed in (1, 2):
        moved = tmp_path / "other" / "k=16" / f"seed={seed}" / "ddi_severity"
        moved.mkdir(parents=True)
        source = tmp_path / "few_shot" / "k=16" / f"seed={seed}" / "ddi_severity" / "hybrid@lr5e-3.json"
        source.rename(moved / "hybrid@lr5e-3.json")
    across = curve.pooled_differences(root=tmp_path, n_resamples=200, a_dir=tmp_path / "other",
                                      out=tmp_path / "across.json")["k=16"]["ddi_severity"]  # fmt: skip
    assert across == two and (tmp_path / "across.json").is_file()
    # a variant that names its own tag is read as named (a control run under another tag)
    for seed in (1, 2):
        folder = tmp_path / "other" / "k=16" / f"seed={seed}" / "ddi_severity"
        (folder / "hybrid@lr5e-3.json").rename(folder / "own_skill_lora@re-lr5e-3.json")
    tagged = curve.pooled_differences("own_skill_lora@re-lr5e-3", root=tmp_path, n_resamples=200,
                                      a_dir=tmp_path / "other", write=False)["k=16"]["ddi_severity"]  # fmt: skip
    assert tagged["per_seed"] == two["per_seed"] and tagged["comparison"] == "own_skill_lora@re-lr5e-3 - task_lora"


def test_few_shot_curve_reads_all_records_from_the_released_study_until_it_has_its_own(tmp_path, monkeypatch):
    """`curve_runs`: the curve's k <= 256 cells, plus the released-skills study's all-record cells of the unseen
    tasks for the curve's own variants only; once the curve has all-record cells, the study is not read."""
    import json

    curve = pytest.importorskip("few_shot_curve")
    monkeypatch.setattr(curve, "RESULTS", tmp_path)
    cell = {"macro_f1": 0.2}
    curve_cells = {"k=16, seed=1": {"ddi_severity": {"hybrid@lr5e-3": cell, "_baselines": {}}}}
    (tmp_path / "few_shot.json").write_text(json.dumps({"runs": curve_cells}))
    study = {"ddi_severity": {"router@lr5e-3": cell, "hybrid@prior-lr5e-3": cell, "xlora@lr5e-3": cell,
                              "_baselines": {}},
             "icd10cm_excludes_nli": {"hybrid@lr5e-3": cell}}  # fmt: skip
    (tmp_path / "label_tasks_released.json").write_text(json.dumps({"runs": {"k=all, seed=42": study}}))
    runs = curve.curve_runs()
    assert runs["k=16, seed=1"] == curve_cells["k=16, seed=1"]
    assert runs["k=all, seed=42"] == {"ddi_severity": {"router@lr5e-3": cell, "_baselines": {}}}
    own = {**curve_cells, "k=all, seed=1": {"ddi_severity": {"task_lora@lr5e-3": cell}}}
    (tmp_path / "few_shot.json").write_text(json.dumps({"runs": own}))
    assert curve.curve_runs() == own


def test_published_results_carry_no_pubmed_text():
    """Results of tasks whose answers are PubMed text are committed with scores and digests, never the text."""
    import json

    texts = ["Aspirin lowered the risk of stroke in older adults.", "No benefit was found.", "Aspirin works."]
    report = {
        "metric_names": ["exact_match"], "exact_match": 0.5, "intervals": {"exact_match": [0.0, 1.0]},
        "prediction_counts": {texts[0][:80]: 2, texts[1]: 1},
        "baselines": {"majority": {"label": texts[2], "exact_match": 0.0},
                      "heuristic": {"label": "last section of the abstract", "exact_match": 0.9}},
    }  # fmt: skip
    result = {"report": report, "predictions": [texts[0], texts[0], texts[1]], "references": texts,
              "per_record": [[1.0], [0.0], [0.0]], "metrics": {"exact_match": 0.5}}  # fmt: skip
    published = study.publishable("pubmed_conclusion_extraction", result)
    dumped = json.dumps(published)
    assert not any(t[:20] in dumped for t in texts)
    assert published["per_record"] == result["per_record"] and published["metrics"] == result["metrics"]
    assert published["predictions"][0] == published["predictions"][1] != published["predictions"][2]
    assert published["report"]["prediction_counts"] == {study.WITHHELD: 2}
    assert published["report"]["baselines"]["heuristic"]["label"] == "last section of the abstract"
    assert study.publishable("drug_disease_ner", result) is result  # mentions, not abstract text
    again = study.publishable("pubmed_conclusion_extraction", published)  # a committed cell published once more
    assert again["predictions"] == published["predictions"] and again["references"] == published["references"]


def test_a_run_without_a_pairs_cells_keeps_the_stored_pair():
    """`study_label_tasks.merge_rows`: new variants and pairs are added or replace their old values; a stored paired
    comparison this run could not recompute (its cells are not in this cache) stays."""
    study = pytest.importorskip("study_label_tasks")
    budget = {"ddi_severity": {"hybrid@lr5e-3": {"macro_f1": 0.2}, "_paired": {"hybrid - task_lora": {"d": 1}}}}
    study.merge_rows(budget, {"ddi_severity": {"router@lr5e-3": {"macro_f1": 0.1}, "_paired": {}}})
    assert budget["ddi_severity"]["_paired"] == {"hybrid - task_lora": {"d": 1}}
    assert set(budget["ddi_severity"]) == {"hybrid@lr5e-3", "router@lr5e-3", "_paired"}
    study.merge_rows(budget, {"ddi_severity": {"_paired": {"hybrid - task_lora": {"d": 2}, "x - y": {"d": 3}}}})
    assert budget["ddi_severity"]["_paired"] == {"hybrid - task_lora": {"d": 2}, "x - y": {"d": 3}}


def test_a_levers_hybrid_is_paired_with_its_base_configuration(tmp_path):
    """`hybrid@prior-lr5e-3` (a lever without a task LoRA of its own) is paired with the base tag's task LoRA,
    own-skill stack and hybrid; a lever that trained its own task LoRA is paired with that one, not the base tag's."""
    refs = ["yes", "no", "yes", "no"]
    cells = {
        "task_lora@lr5e-3": ["yes", "yes", "yes", "yes"],
        "hybrid@lr5e-3": ["yes", "no", "no", "no"],
        "hybrid@prior-lr5e-3": refs,
        "hybrid@r16-lr5e-3": refs,
        "task_lora@r16-lr5e-3": ["no", "no", "no", "no"],
        "own_skill_lora@lr5e-3": ["no", "no", "yes", "no"],
    }
    for name, predictions in cells.items():
        (tmp_path / f"{name}.json").write_text(json.dumps({"predictions": predictions, "references": refs}))
    pairs = study.paired_comparisons(tmp_path, TASKS["icd10cm_excludes_nli"])
    assert set(pairs) == {
        "hybrid@lr5e-3 - task_lora@lr5e-3",
        "hybrid@prior-lr5e-3 - task_lora@lr5e-3",
        "hybrid@prior-lr5e-3 - hybrid@lr5e-3",
        "hybrid@r16-lr5e-3 - task_lora@r16-lr5e-3",
        "hybrid@r16-lr5e-3 - hybrid@lr5e-3",
        "hybrid@lr5e-3 - own_skill_lora@lr5e-3",
        "hybrid@prior-lr5e-3 - own_skill_lora@lr5e-3",
        "hybrid@r16-lr5e-3 - own_skill_lora@lr5e-3",
    }
    assert pairs["hybrid@prior-lr5e-3 - task_lora@lr5e-3"]["accuracy"]["difference"] == 0.5
    assert pairs["hybrid@prior-lr5e-3 - hybrid@lr5e-3"]["accuracy"]["difference"] == 0.25
