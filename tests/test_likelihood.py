"""Option log-likelihood scoring: equals a direct computation, routes on the prompt only, and reports honestly."""

from __future__ import annotations

import dataclasses
import random
from collections import Counter

import pytest
import torch
from datasets import Dataset, DatasetDict
from peft import get_peft_model

from samdkif_peft import SkillRouterConfig
from samdkif_peft.data.tasks import TASKS
from samdkif_peft.data.templates import format_prompt
from samdkif_peft.evaluation import load_metric
from samdkif_peft.evaluation.likelihood import (
    _fast_scores,
    batch_calibrate,
    bootstrap_mean_interval,
    evaluate_options,
    label_report,
    option_log_likelihoods,
    paired_difference,
    pick_options,
    scoreable,
    task_options,
)

from .conftest import _save_base, char_tokenizer, load_base, make_lora_skill, randomize_router


LABELS = ("contraindicated", "not recommended", "precaution for use", "take into account")
SPEC = dataclasses.replace(TASKS["ddi_severity"], name="tiny_ddi")


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    tok = char_tokenizer()
    root = tmp_path_factory.mktemp("lik")
    path = _save_base(root / "base", vocab_size=len(tok), eos_token_id=0, pad_token_id=0, bos_token_id=1,
                      max_position_embeddings=256)  # fmt: skip
    skills = {name: make_lora_skill(path, str(root / name), seed=i) for i, name in enumerate(("ner", "nli"), 1)}
    return {"base": path, "tok": tok, "skills": skills}


def _records(n: int, seed: int = 0):
    rng = random.Random(seed)
    drugs = ["aspirin", "warfarin", "codeine", "insulin", "lithium", "digoxin"]
    return [
        {"context": f"{rng.choice(drugs)} + {rng.choice(drugs)}", "query": "How severe?", "output": rng.choice(LABELS)}
        for _ in range(n)
    ]


def _direct(model, tok, prompt: str, option: str) -> float:
    """Sum of log P(option tokens + EOS | prompt), one sequence, no padding."""
    p = tok(prompt, add_special_tokens=True)["input_ids"]
    a = [*tok(option, add_special_tokens=False)["input_ids"], tok.eos_token_id]
    ids = torch.tensor([p + a])
    with torch.no_grad():
        logprobs = torch.log_softmax(model(input_ids=ids).logits[0, :-1].float(), -1)
    return sum(logprobs[len(p) - 1 + t, tok_id].item() for t, tok_id in enumerate(a))


def test_batched_scores_equal_direct_computation(assets):
    model, tok = load_base(assets["base"]), assets["tok"]
    records = _records(5)
    prompts = [format_prompt(r) for r in records]
    scores = option_log_likelihoods(model, tok, prompts, [LABELS] * len(prompts), batch_size=3)
    for prompt, row in zip(prompts, scores):
        for option, (total, count) in zip(LABELS, row):
            assert count == len(option) + 1  # one token per character, plus EOS
            assert total == pytest.approx(_direct(model, tok, prompt, option), abs=1e-3)
    ragged = [list(LABELS[: 1 + i % 4]) for i in range(len(prompts))]  # multiple choice: options differ per record
    for prompt, opts, row in zip(prompts, ragged, option_log_likelihoods(model, tok, prompts, ragged, batch_size=4)):
        assert [round(t, 3) for t, _ in row] == [round(_direct(model, tok, prompt, o), 3) for o in opts]


def test_scores_without_cache_equal_direct_computation(assets):
    model, tok = load_base(assets["base"]), assets["tok"]
    prompts = [format_prompt(r) for r in _records(5, seed=1)]
    ragged = [list(LABELS[: 1 + i % 4]) for i in range(len(prompts))]
    for options in ([LABELS] * len(prompts), ragged):
        scores = option_log_likelihoods(model, tok, prompts, options, batch_size=2, use_cache=False)
        for prompt, opts, row in zip(prompts, options, scores):
            assert [n for _, n in row] == [len(o) + 1 for o in opts]
            assert [round(t, 3) for t, _ in row] == [round(_direct(model, tok, prompt, o), 3) for o in opts]


def test_xlora_is_scored_on_full_sequences(assets):
    """peft's X-LoRA cannot continue from a KV cache (its scaling pass appends each option a second time); its config
    says `use_cache=False`, and the scorer then equals X-LoRA's own forward over `prompt + option`."""
    from peft import XLoraConfig

    tok = assets["tok"]
    base = load_base(assets["base"])
    base.config.use_cache = False
    adapters = {str(i): path for i, path in enumerate(assets["skills"].values())}
    model = get_peft_model(base, XLoraConfig(task_type="CAUSAL_LM", hidden_size=32, adapters=adapters)).eval()
    torch.manual_seed(0)
    with torch.no_grad():
        for param in model.base_model.internal_xlora_classifier.parameters():
            param.copy_(torch.randn_like(param))
    prompts = [format_prompt(r) for r in _records(3, seed=2)]
    scores = option_log_likelihoods(model, tok, prompts, [LABELS] * len(prompts), batch_size=2)
    for prompt, row in zip(prompts, scores):
        assert [round(t, 3) for t, _ in row] == [round(_direct(model, tok, prompt, o), 3) for o in LABELS]


def test_sequence_router_scores_with_prompt_gates(assets):
    """The router must route on the prompt alone, as in training and generate, never on the option it scores."""
    tok = assets["tok"]
    config = SkillRouterConfig(skills=assets["skills"], router="sequence", task_type="CAUSAL_LM")
    model = get_peft_model(load_base(assets["base"]), config).eval()
    model.config.use_cache = False  # as many training recipes leave it: our router still scores from the cache
    randomize_router(model)
    prompt = format_prompt(_records(1)[0])
    option_log_likelihoods(model, tok, [prompt], [["take into account"]])
    scored = model.base_model.get_routing_weights()
    with torch.no_grad():
        model(**tok(prompt, return_tensors="pt"))
    on_prompt = model.base_model.get_routing_weights()
    for key, gates in on_prompt.items():
        torch.testing.assert_close(scored[key], gates)
    direct = option_log_likelihoods(model, tok, [prompt], [["take into account", "contraindicated"]])[0]
    assert direct[0] != direct[1]


def test_pick_options_normalisations():
    scores = [[(-4.0, 2), (-5.0, 10)], [(-1.0, 1), (-3.0, 1)]]
    assert pick_options(scores, "sum") == [0, 0]
    assert pick_options(scores, "mean") == [1, 0]  # -0.5 per token beats -2.0
    with pytest.raises(ValueError, match="normalization"):
        pick_options(scores, "chars")


def test_batch_calibration_removes_a_bias_shared_by_every_row():
    """One option scored +3 on every row wins everywhere raw; subtracting each position's mean restores the row-wise
    preferences underneath (the batch's own mean, no labels)."""
    preferences = [[-1.0, -2.0, -3.0], [-3.0, -1.0, -2.0], [-2.0, -3.0, -1.0], [-1.5, -2.0, -3.0]]
    biased = [[s + (3.0 if j == 2 else 0.0) for j, s in enumerate(row)] for row in preferences]
    assert pick_options([[(s, 1) for s in row] for row in biased]) == [2, 2, 2, 2]
    assert batch_calibrate(biased) == batch_calibrate(preferences) == [0, 1, 2, 0]
    with pytest.raises(ValueError, match="same number"):
        batch_calibrate([[-1.0, -2.0], [-1.0]])


def test_option_inputs_validated(assets):
    model, tok = load_base(assets["base"]), assets["tok"]
    with pytest.raises(ValueError, match="one list per prompt"):
        option_log_likelihoods(model, tok, ["a", "b"], [["x"]])
    with pytest.raises(ValueError, match=r"options\[0\]"):
        option_log_likelihoods(model, tok, ["a"], ["xy"])
    with pytest.raises(ValueError, match=r"options\[0\]"):
        option_log_likelihoods(model, tok, ["a"], [["x", ""]])


def test_task_options():
    record = {"context": "Phenotypes: ...\n(A) Marfan syndrome\n(B) Noonan syndrome", "output": "(B) Noonan syndrome"}
    assert task_options("rare_disease_diagnosis", record) == ["(A) Marfan syndrome", "(B) Noonan syndrome"]
    assert task_options("icd10cm_excludes_nli", {}) == ["entailment", "neutral", "contradiction"]
    assert len(task_options("icd10cm_chapter_classification", {})) == 22
    assert scoreable("ddi_severity") and not scoreable("hpo_definition_qa")
    with pytest.raises(ValueError, match="generation"):
        task_options("hpo_definition_qa", {})
    with pytest.raises(ValueError, match="option lines"):
        task_options("rare_disease_diagnosis", {"context": "no options here"})


def test_label_report_matches_packaged_metric_and_baselines():
    rng = random.Random(3)
    refs = [rng.choice("abc") for _ in range(200)]
    preds = [r if rng.random() < 0.6 else rng.choice("abc") for r in refs]
    report = label_report(preds, refs, labels="abc", train_references=["c"] * 5 + ["a"], n_resamples=200)
    expected = load_metric("classification").compute(predictions=preds, references=refs)
    assert report["accuracy"] == pytest.approx(expected["accuracy"])
    assert report["macro_f1"] == pytest.approx(expected["macro_f1"])
    for key in ("accuracy", "macro_f1"):
        lo, hi = report["intervals"][key]
        assert lo < report[key] < hi and hi - lo < 0.25
    assert report["baselines"]["majority"]["label"] == "c"  # from the training labels, not the test ones
    assert report["baselines"]["majority"]["accuracy"] == pytest.approx(refs.count("c") / len(refs))
    assert report["baselines"]["chance"]["accuracy"] == pytest.approx(1 / 3)
    assert sum(report["prediction_counts"].values()) == 200


def test_collapsed_predictions_are_visible():
    refs = ["a", "b", "c", "a"] * 25
    report = label_report(["a"] * 100, refs, n_resamples=50)
    assert report["prediction_counts"] == {"a": 100}
    assert report["macro_f1"] == pytest.approx(load_metric("classification").compute(
        predictions=["a"] * 100, references=refs)["macro_f1"])  # fmt: skip


def test_fast_scores_equal_packaged_metric():
    import numpy as np

    rng = random.Random(5)
    metric = load_metric("classification")
    for _ in range(20):
        refs = [rng.choice("abcd") for _ in range(rng.randint(1, 30))]
        preds = [rng.choice("abcde") for _ in refs]
        fast = _fast_scores(np.array(preds, dtype=object), np.array(refs, dtype=object))
        slow = metric.compute(predictions=preds, references=refs)
        assert fast == pytest.approx(slow)


def test_bootstrap_mean_interval():
    lo, hi = bootstrap_mean_interval([0.0, 1.0] * 50, n_resamples=500)
    assert lo < 0.5 < hi
    assert bootstrap_mean_interval([0.3] * 10) == pytest.approx([0.3, 0.3])
    with pytest.raises(ValueError):
        bootstrap_mean_interval([])


def test_evaluate_options_end_to_end(assets):
    model, tok = load_base(assets["base"]), assets["tok"]
    data = DatasetDict({"train": Dataset.from_list(_records(30, 1)), "test": Dataset.from_list(_records(12, 2))})
    result = evaluate_options(model, tok, SPEC, data, n_resamples=50)
    assert result["n"] == 12 and len(result["predictions"]) == 12 and len(result["option_scores"][0]) == 4
    # the report is a direct function of the predictions it returns
    direct = load_metric("classification").compute(predictions=result["predictions"], references=result["references"])
    assert result["metrics"] == pytest.approx(direct)
    picks = pick_options([list(zip(s, n)) for s, n in zip(result["option_scores"], result["option_tokens"])])
    assert [LABELS[j] for j in picks] == result["predictions"]
    assert 0.0 <= result["report"]["accuracy_mean"] <= 1.0
    calibrated = [LABELS[j] for j in batch_calibrate(result["option_scores"])]  # from the returned (rounded) scores
    assert result["report"]["batch_calibrated"]["prediction_counts"] == dict(Counter(calibrated).most_common())
    assert result["report"]["batch_calibrated"]["macro_f1"] == pytest.approx(
        load_metric("classification").compute(predictions=calibrated, references=result["references"])["macro_f1"]
    )
    assert result["references"] == [r["output"] for r in data["test"]]
    few = evaluate_options(model, tok, SPEC, data, limit=3, prompt_fn=lambda r: "Q: " + format_prompt(r))
    assert few["n"] == 3


def test_paired_difference():
    rng = random.Random(9)
    refs = [rng.choice("abc") for _ in range(300)]
    good = [r if rng.random() < 0.8 else "a" for r in refs]
    bad = ["a"] * 300
    diff = paired_difference(good, bad, refs, n_resamples=300)
    acc = diff["accuracy"]
    assert acc["difference"] == pytest.approx(sum(g == r for g, r in zip(good, refs)) / 300 - refs.count("a") / 300)
    assert 0 < acc["interval"][0] < acc["difference"] < acc["interval"][1]
    same = paired_difference(good, good, refs, n_resamples=50)
    assert same["macro_f1"] == {"difference": 0.0, "interval": [0.0, 0.0]}
    with pytest.raises(ValueError, match="equally long"):
        paired_difference(["a"], ["a", "b"], ["a"])
