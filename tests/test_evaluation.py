"""Evaluation scoring: packaged metric modules (doctests and hand-computed values), answer parsing per output format,
`score_task` on all 9 downstream tasks, offline loading and input validation. The real-data check is `-m slow`."""

from __future__ import annotations

import dataclasses
import doctest
import importlib.util
import socket

import pytest

from samdkif_peft.data.tasks import OUTPUT_FORMATS, TASK_NAMES, TASKS
from samdkif_peft.evaluation import (
    FORMAT_METRICS,
    ICD10CM_CHAPTERS,
    METRIC_NAMES,
    METRICS,
    cut_generation,
    load_metric,
    metric_path,
    parse_entities,
    parse_label_set,
    parse_option,
    parse_prediction,
    score_task,
    task_labels,
    task_metric_names,
)
from samdkif_peft.evaluation.metrics import METRICS_DIR


def _module(name: str):
    spec = importlib.util.spec_from_file_location(f"samdkif_metric_{name}", metric_path(name))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _approx(expected: dict[str, float]):
    return {k: pytest.approx(v, abs=1e-4) for k, v in expected.items()}


# ------------------------------------------------------------------------------------------------------------------
# Metric modules


@pytest.mark.parametrize("name", METRIC_NAMES)
def test_metric_doctests(name):
    """As evaluate's own test suite does: the Examples in each module's docstring must run and match."""
    result = doctest.testmod(_module(name), optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0, f"{name} has no doctest examples"
    assert result.failed == 0


@pytest.mark.parametrize("name", METRIC_NAMES)
def test_metric_module_shape(name):
    module = _module(name)
    for attr in ("_DESCRIPTION", "_KWARGS_DESCRIPTION", "_CITATION"):
        assert getattr(module, attr).strip(), f"{name}.{attr} is empty"
    for section in ("Args:", "Returns:", "Examples:"):
        assert section in module._KWARGS_DESCRIPTION


METRIC_CASES = [
    # 3 of 5 right; per-label F1 a=.5, b=2/3, c=2/3 (averaged over reference labels)
    (
        "classification",
        {"predictions": ["a", "a", "b", "c", "c"], "references": ["a", "b", "b", "c", "a"]},
        {"accuracy": 0.6, "macro_f1": 11 / 18},
    ),
    # a label with no support counts as F1 0 when listed explicitly
    (
        "classification",
        {"predictions": ["a", "a", "b", "c", "c"], "references": ["a", "b", "b", "c", "a"], "labels": list("abcd")},
        {"accuracy": 0.6, "macro_f1": 11 / 24},
    ),
    # off-label text is wrong and adds no pseudo-class
    ("classification", {"predictions": ["zzz", "b"], "references": ["a", "b"]}, {"accuracy": 0.5, "macro_f1": 0.5}),
    (
        "exact_match",
        {
            "predictions": [" Pain  was reduced.", "pain reduced", "PAIN"],
            "references": ["pain was reduced", "x", "pain"],
        },
        {"exact_match": 2 / 3},
    ),
    # tp=2 fp=1 fn=1; per label hf=1, diab=1, obese=0; one exact set
    (
        "label_set_f1",
        {"predictions": [["HF", "VALVE"], ["DIAB_CX"], []], "references": [["HF"], ["DIAB_CX", "OBESE"], []]},
        {"micro_precision": 2 / 3, "micro_recall": 2 / 3, "micro_f1": 2 / 3, "macro_f1": 2 / 3, "exact_match": 1 / 3},
    ),
    # nothing to find and nothing predicted: a perfect `none` batch
    (
        "label_set_f1",
        {"predictions": [[], []], "references": [[], []]},
        {"micro_precision": 1.0, "micro_recall": 1.0, "micro_f1": 1.0, "macro_f1": 1.0, "exact_match": 1.0},
    ),
    # empty predictions: no true positives
    (
        "label_set_f1",
        {"predictions": [[], []], "references": [["HF"], []]},
        {"micro_precision": 0.0, "micro_recall": 0.0, "micro_f1": 0.0, "macro_f1": 0.0, "exact_match": 0.5},
    ),
    # typed entities: a right mention with the wrong type is both a false positive and a false negative
    (
        "label_set_f1",
        {
            "predictions": [["DRUG: aspirin", "DISEASE: pain", "DRUG: heparin"]],
            "references": [["DRUG: aspirin", "DRUG: pain"]],
        },
        {"micro_precision": 1 / 3, "micro_recall": 0.5, "micro_f1": 0.4, "macro_f1": 0.5, "exact_match": 0.0},
    ),
    # SQuAD: "the Paris" == "Paris"; "in Paris France" vs "Paris": P=1/3, R=1, F1=0.5
    (
        "token_f1",
        {"predictions": ["the Paris", "in Paris France"], "references": ["Paris", "Paris"]},
        {"token_f1": 0.75},
    ),
    # LCS "kidney pain relief" = 3 of 4 tokens each side
    (
        "rouge_l",
        {"predictions": ["Kidney stone pain relief"], "references": ["kidney pain relief study"]},
        {"rouge_l": 0.75, "rouge_l_precision": 0.75, "rouge_l_recall": 0.75},
    ),
]


@pytest.mark.parametrize("name, kwargs, expected", METRIC_CASES)
def test_metric_values(name, kwargs, expected):
    assert load_metric(name).compute(**kwargs) == _approx(expected)


def test_load_metric_works_without_network(monkeypatch):
    """evaluate.load("accuracy") would fetch from the Hub; the packaged modules must load with every socket refused."""

    def refuse(*args, **kwargs):
        raise OSError("network disabled in test")

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_EVALUATE_OFFLINE", "1")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    for name in METRIC_NAMES:
        assert load_metric(name).name
    assert load_metric("classification").compute(predictions=["a"], references=["a"])["accuracy"] == 1.0


def test_metric_registry_matches_modules():
    """`METRICS` is the one declaration: every module folder is registered and returns exactly its registered keys."""
    folders = {p.parent.name for p in METRICS_DIR.glob("*/*.py") if p.stem == p.parent.name}
    assert folders == set(METRIC_NAMES)
    for name, kwargs, _ in METRIC_CASES:
        assert tuple(load_metric(name).compute(**kwargs)) == METRICS[name]


def test_every_output_format_is_scored():
    assert set(FORMAT_METRICS) == set(OUTPUT_FORMATS)
    for fmt, owners in FORMAT_METRICS.items():
        assert set(owners.values()) <= set(METRIC_NAMES), fmt


def test_load_metric_unknown_name():
    with pytest.raises(ValueError, match=r"Unknown metric 'accuracy'.*classification"):
        load_metric("accuracy")


# ------------------------------------------------------------------------------------------------------------------
# Parsing


@pytest.mark.parametrize(
    "text, expected",
    [
        ("neutral\n\n### Instruction:\nDoes the premise entail", "neutral"),
        ("neutral<|endoftext|>### Input:", "neutral"),
        ("  ### Response:\nneutral", ""),
        ("a ### inside a line is kept", "a ### inside a line is kept"),
        ("  two\nlines  ", "two\nlines"),
    ],
)
def test_cut_generation(text, expected):
    assert cut_generation(text) == expected


@pytest.mark.parametrize(
    "task, text, expected",
    [
        ("icd10cm_excludes_nli", "Neutral.", "neutral"),
        ("icd10cm_excludes_nli", "**Contradiction**", "contradiction"),
        ("icd10cm_excludes_nli", "Answer: entailment", "entailment"),
        ("icd10cm_excludes_nli", "contradiction. The hypothesis is excluded", "contradiction"),
        ("icd10cm_excludes_nli", "I would say it is neutral here", "neutral"),
        ("icd10cm_excludes_nli", "neutrality", "neutrality"),  # whole words only
        ("icd10cm_excludes_nli", "maybe", "maybe"),  # unknown stays wrong, no default class
        ("icd10cm_excludes_nli", "", ""),
        ("ddi_severity", "not", "not recommended"),  # truncated, matches one label only
        ("ddi_severity", "Precaution for use.\n### Instruction:", "precaution for use"),
        ("icd10cm_chapter_classification", "Neoplasms", "Neoplasms (C00-D49)"),  # code range dropped
        ("icd10cm_chapter_classification", "neoplasms (c00-d49)", "Neoplasms (C00-D49)"),
        ("icd10cm_chapter_classification", "Diseases of the", "diseases of the"),  # ambiguous prefix: wrong
        (
            "icd10cm_chapter_classification",
            "Diseases of the ear and mastoid process",
            "Diseases of the ear and mastoid process (H60-H95)",
        ),
    ],
)
def test_parse_label(task, text, expected):
    assert parse_prediction(task, text) == expected


CONTEXT = (
    "Patient phenotypes: Situs inversus totalis; Chronic sinusitis.\nOptions:\n(A) Ciliary dyskinesia, primary, 1\n"
    "(B) Ciliary dyskinesia, primary, 13\n(C) Marfan syndrome\n(D) Ciliary dyskinesia, primary, 10"
)


@pytest.mark.parametrize(
    "text, context, expected",
    [
        ("B", None, "B"),
        ("B.", None, "B"),
        ("B) Marfan", None, "B"),
        ("(B) Marfan syndrome", None, "B"),
        ("Answer: B", None, "B"),
        ("The answer is (C).", None, "C"),
        ("I think the answer is D because", None, "D"),
        ("Option C", None, "C"),
        ("D\n### Instruction:\nWhich disease (A) ...", None, "D"),
        ("(B) Marfan syndrome", CONTEXT, "B"),  # the letter wins over the option text
        ("Marfan syndrome", CONTEXT, "C"),  # letter missing: match the option text
        ("Ciliary dyskinesia, primary, 1", CONTEXT, "A"),  # not confused with ", 10" / ", 13"
        ("It is ciliary dyskinesia, primary, 10.", CONTEXT, "D"),
        ("Ciliary dyskinesia", CONTEXT, "ciliary dyskinesia"),  # ambiguous: wrong
        ("A patient with this phenotype", None, "a patient with this phenotype"),  # "A" is not an option here
        ("Marfan syndrome", None, "marfan syndrome"),  # no context, no letter
        ("E", None, "e"),
        ("", CONTEXT, ""),
    ],
)
def test_parse_option(text, context, expected):
    assert parse_prediction("rare_disease_diagnosis", text, context) == expected
    assert parse_option(text, "ABCD", context) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("CBVD_SQLA; PARALYSIS", ["cbvd_sqla", "paralysis"]),
        ("PARALYSIS;CBVD_SQLA", ["cbvd_sqla", "paralysis"]),
        ("HF, VALVE\nhf", ["hf", "valve"]),
        ("- HF\n- VALVE.", ["hf", "valve"]),
        ("Answer: HF", ["hf"]),
        ("none", []),
        ("None.", []),
        ("HF; none", ["hf"]),
        ("", []),
        ("DIAB_CX\n### Instruction:\nWhich AHRQ", ["diab_cx"]),
    ],
)
def test_parse_label_set(text, expected):
    assert parse_prediction("elixhauser_comorbidity", text) == expected
    assert parse_label_set(text) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        (
            "DISEASE: Obstructive sleep apnea\nDISEASE: sleep disorder",
            ["DISEASE: obstructive sleep apnea", "DISEASE: sleep disorder"],
        ),
        ("drug: Aspirin.\nDRUG: aspirin", ["DRUG: aspirin"]),  # type and mention normalised, deduplicated
        ("- DRUG: aspirin\n2. DISEASE: pain", ["DISEASE: pain", "DRUG: aspirin"]),  # list markers
        ("DRUG: aspirin; DISEASE: pain", ["DISEASE: pain", "DRUG: aspirin"]),  # several on one line
        ("Here are the entities:\nDRUG: heparin\nno colon here\nDISEASE:", ["DRUG: heparin"]),  # malformed ignored
        ("CHEMICAL: aspirin\nDRUG: x", ["DRUG: x"]),  # type outside the task's label set ignored
        ("DISEASE: cancer: stage II", ["DISEASE: cancer: stage ii"]),  # only the first colon separates
        ("DRUG: aspirin\n### Instruction:\nDRUG: fake", ["DRUG: aspirin"]),
        ("", []),
    ],
)
def test_parse_entities(text, expected):
    assert parse_prediction("drug_disease_ner", text) == expected
    assert parse_entities(text, ("DRUG", "DISEASE")) == expected


@pytest.mark.parametrize("task", ["hpo_definition_qa", "pubmed_title_generation", "pubmed_conclusion_extraction"])
def test_parse_text_and_span(task):
    assert parse_prediction(task, "  A title.\n### Instruction:\nmore") == "A title."
    assert parse_prediction(task, "Line one.\nLine two.<|endoftext|>") == "Line one.\nLine two."


def test_chapter_labels_cover_icd10cm():
    assert TASKS["icd10cm_chapter_classification"].labels == ICD10CM_CHAPTERS
    assert len(ICD10CM_CHAPTERS) == len(set(ICD10CM_CHAPTERS)) == 22
    assert task_labels("ddi_severity") == TASKS["ddi_severity"].labels


def test_closed_answer_spaces_are_on_the_task_spec():
    """Every label / option task carries its label space, so parsing never falls back to a second declaration."""
    for spec in TASKS.values():
        if spec.output_format in ("label", "option", "entities"):
            assert spec.labels and len(set(spec.labels)) == len(spec.labels), spec.name


# ------------------------------------------------------------------------------------------------------------------
# score_task on every task

NLI = TASKS["icd10cm_excludes_nli"].labels
CHAPTER_EYE, CHAPTER_NEO, CHAPTER_NERVE = ICD10CM_CHAPTERS[6], ICD10CM_CHAPTERS[1], ICD10CM_CHAPTERS[5]
OPTIONS_REFS = [
    "(D) Ciliary dyskinesia, primary, 10",
    "(B) Ciliary dyskinesia, primary, 13",
    "(A) Ciliary dyskinesia, primary, 1",
    "(C) Marfan syndrome",
]

# task -> (references, contexts, mixed predictions, their hand-computed scores)
TASK_CASES = {
    "icd10cm_chapter_classification": (
        [CHAPTER_EYE, CHAPTER_NEO, CHAPTER_NEO, CHAPTER_NERVE],
        None,
        [
            "Diseases of the eye and adnexa",
            "neoplasms (C00-D49).",
            CHAPTER_NERVE + "\n### Instruction:\n",
            "Diseases of the",
        ],
        # eye F1 1, neoplasms P=1 R=.5 F1=2/3, nervous 0
        {"accuracy": 0.5, "macro_f1": 5 / 9},
    ),
    "hpo_definition_qa": (
        ["Abnormality of the lacrimal gland."],
        None,
        ["Abnormal shape of the lacrimal gland\n### Instruction:\nWhat is"],
        # tokens: abnormal shape of the lacrimal gland / abnormality of the lacrimal gland; LCS 4: P=4/6, R=4/5
        {"rouge_l": 8 / 11},
    ),
    "pubmed_title_generation": (
        ["Metabolic syndrome and masticatory hypofunction: a cross-sectional study."],
        None,
        ["Metabolic syndrome and masticatory hypofunction<|endoftext|>unrelated"],
        # LCS 5 of 5 predicted and 9 reference tokens: F1 = 2 * 1 * 5/9 / (1 + 5/9)
        {"rouge_l": 5 / 7},
    ),
    "pubmed_conclusion_extraction": (
        ["The drug reduced pain.", "No effect was seen."],
        None,
        ["the drug reduced  pain", "No effect."],
        # second: 2 of 4 reference tokens, all predicted tokens right: F1 = 2/3 for both token F1 and ROUGE-L
        {"exact_match": 0.5, "token_f1": 5 / 6, "rouge_l": 5 / 6},
    ),
    "icd10cm_excludes_nli": (
        ["neutral", "contradiction", "entailment", "contradiction"],
        None,
        ["Neutral.", "The answer is contradiction", "neutrality", "entailment, neutral or contradiction"],
        # neutral 1, contradiction P=1 R=.5, entailment 0 (the echoed label list counts as its first label)
        {"accuracy": 0.5, "macro_f1": 5 / 9},
    ),
    "drug_disease_ner": (
        ["DISEASE: hyperglycemia\nDISEASE: hyperlipidemia\nDRUG: metformin"],
        None,
        [
            "DISEASE: Hyperglycemia.\nDRUG: hyperlipidemia\nSome commentary\nCHEMICAL: metformin\n"
            "### Instruction:\nDRUG: x"
        ],
        # tp 1, fp 1 (wrong type), fn 2: P=1/2, R=1/3
        {"micro_f1": 0.4},
    ),
    "elixhauser_comorbidity": (
        ["DIAB_CX", "CBVD_SQLA; PARALYSIS", "none"],
        None,
        ["DIAB_CX", "CBVD_SQLA, HF", "None."],
        # tp 2, fp 1, fn 1; per label diab_cx 1, cbvd_sqla 1, paralysis 0
        {"micro_f1": 2 / 3, "exact_match": 2 / 3, "macro_f1": 2 / 3},
    ),
    "rare_disease_diagnosis": (
        OPTIONS_REFS,
        [CONTEXT] * 4,
        ["D.", "The answer is (B)", "Ciliary dyskinesia, primary, 1", "Noonan syndrome"],
        {"accuracy": 0.75},
    ),
    "ddi_severity": (
        ["contraindicated", "not recommended", "precaution for use", "take into account"],
        None,
        ["Contraindicated", "not", "precautions", "**Take into account**"],
        # "precautions" is not a whole-word match: precaution for use F1 0, the other three 1
        {"accuracy": 0.75, "macro_f1": 0.75},
    ),
}


def test_every_task_has_a_case():
    assert set(TASK_CASES) == set(TASK_NAMES)


@pytest.mark.parametrize("task", TASK_NAMES)
def test_score_task_perfect(task):
    references, contexts, _, _ = TASK_CASES[task]
    scores = score_task(task, references, references, contexts)
    assert list(scores) == list(task_metric_names(task))
    assert list(scores)[0] == TASKS[task].metric
    assert scores == dict.fromkeys(scores, 1.0)


@pytest.mark.parametrize("task", TASK_NAMES)
def test_score_task_empty_predictions(task):
    references, contexts, _, _ = TASK_CASES[task]
    scores = score_task(task, [""] * len(references), references, contexts)
    assert scores[TASKS[task].metric] == 0.0
    assert all(0.0 <= v <= 1.0 for v in scores.values())


@pytest.mark.parametrize("task", TASK_NAMES)
def test_score_task_mixed(task):
    references, contexts, predictions, expected = TASK_CASES[task]
    assert score_task(task, predictions, references, contexts) == _approx(expected)


def test_score_task_details():
    references, _, predictions, _ = TASK_CASES["drug_disease_ner"]
    scores = score_task("drug_disease_ner", predictions, references, details=True)
    assert list(scores)[0] == "micro_f1"
    assert scores == _approx(
        {"micro_f1": 0.4, "micro_precision": 0.5, "micro_recall": 1 / 3, "macro_f1": 1 / 3, "exact_match": 0.0}
    )
    text = score_task("hpo_definition_qa", ["a b"], ["a b c d"], details=True)
    assert text == _approx({"rouge_l": 2 / 3, "rouge_l_precision": 1.0, "rouge_l_recall": 0.5})


def test_score_task_accepts_a_spec():
    spec = TASKS["ddi_severity"]
    assert score_task(spec, ["contraindicated"], ["contraindicated"]) == {"accuracy": 1.0, "macro_f1": 1.0}


# ------------------------------------------------------------------------------------------------------------------
# Bad input


def test_mismatched_lengths():
    with pytest.raises(ValueError, match=r"ddi_severity: got 2 predictions but 1 references; pass one prediction"):
        score_task("ddi_severity", ["a", "b"], ["a"])
    with pytest.raises(ValueError, match=r"got 1 contexts for 2 references"):
        score_task("rare_disease_diagnosis", ["A", "B"], ["(A) x", "(B) y"], contexts=["ctx"])


def test_empty_input():
    with pytest.raises(ValueError, match=r"empty; pass at least one example"):
        score_task("ddi_severity", [], [])


def test_unknown_task():
    with pytest.raises(ValueError, match=r"Unknown task 'nli'.*icd10cm_excludes_nli"):
        score_task("nli", ["a"], ["a"])
    with pytest.raises(ValueError, match=r"Unknown task 'nli'"):
        parse_prediction("nli", "a")


def test_wrong_types():
    with pytest.raises(TypeError, match=r"predictions must be a list of strings, got a single str"):
        score_task("ddi_severity", "contraindicated", ["contraindicated"])
    with pytest.raises(TypeError, match=r"references\[1\] is NoneType"):
        score_task("ddi_severity", ["a", "b"], ["a", None])
    with pytest.raises(TypeError, match=r"expected a str answer, got int"):
        parse_prediction("ddi_severity", 3)


def test_unsupported_task_metric_and_format():
    spec = dataclasses.replace(TASKS["hpo_definition_qa"], metric="bleu")
    with pytest.raises(ValueError, match=r"asks for \['bleu'\].*support only exact_match, token_f1, rouge_l"):
        score_task(spec, ["a"], ["a"])
    with pytest.raises(ValueError, match=r"output_format 'table'; supported"):
        dataclasses.replace(TASKS["hpo_definition_qa"], output_format="table")


# ------------------------------------------------------------------------------------------------------------------
# Real built data


@pytest.mark.slow
@pytest.mark.parametrize("task", TASK_NAMES)
def test_real_references_score_perfectly(task):
    """Every real answer format parses: each split's references scored against themselves give 1.0 everywhere."""
    from samdkif_peft.data import load_task

    try:
        data = load_task(task)
    except FileNotFoundError as err:
        pytest.skip(str(err))
    spec = TASKS[task]
    labels = spec.labels
    for split, ds in data.items():
        references, contexts = ds["output"], ds["context"]
        scores = score_task(task, references, references, contexts, details=True)
        assert scores == dict.fromkeys(scores, 1.0), (task, split)
        parsed = [parse_prediction(spec, r, c) for r, c in zip(references, contexts)]
        if spec.output_format in ("label", "option") and labels:
            assert set(parsed) <= set(labels), (task, split, set(parsed) - set(labels))
        if spec.output_format == "entities":  # no reference line is dropped as malformed
            assert [len(p) for p in parsed] == [len(set(r.splitlines())) for r in references]
        assert scores[spec.metric] == 1.0
        empty = score_task(task, [""] * len(references), references, contexts)
        assert empty[spec.metric] == 0.0, (task, split)
