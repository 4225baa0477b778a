"""The evaluation loop: batched, length-sorted, left-padded greedy generation equals one-by-one generation."""

from __future__ import annotations

import pytest
import torch
from datasets import Dataset, DatasetDict

from samdkif_peft.data.templates import format_prompt
from samdkif_peft.evaluation.generation import answer_budget, evaluate_task, generate_answers

from .conftest import _save_base, char_tokenizer, load_base


RECORDS = [
    {"context": "", "query": "upper heart", "output": "HEART"},
    {"context": "Patient note: renal failure with fever and a long history.", "query": "reverse lung", "output": "x"},
    {"context": "short", "query": "upper bone", "output": "BONE"},
    {"context": "", "query": "q", "output": "Q"},
    {"context": "another longer context line for padding", "query": "reverse gene", "output": "eneg"},
]


@pytest.fixture(scope="module")
def model_and_tokenizer(tmp_path_factory):
    tok = char_tokenizer()
    path = _save_base(tmp_path_factory.mktemp("gen") / "base", vocab_size=len(tok), eos_token_id=0, pad_token_id=0,
                      max_position_embeddings=256)  # fmt: skip
    return load_base(path), tok


def _one_by_one(model, tok, record, max_new_tokens):
    ids = tok(format_prompt(record), add_special_tokens=False, return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tok.pad_token_id)
    return tok.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)


def test_batched_generation_matches_one_by_one_in_input_order(model_and_tokenizer):
    model, tok = model_and_tokenizer
    model.train()  # the loop must switch to eval and back
    tok.padding_side = "right"
    batched = generate_answers(model, tok, RECORDS, batch_size=3, max_new_tokens=6)
    assert model.training and tok.padding_side == "right"
    model.eval()
    expected = [_one_by_one(model, tok, r, 6).split("\n###")[0].strip() for r in RECORDS]
    assert batched == expected
    assert all(len(tok(a, add_special_tokens=False)["input_ids"]) <= 6 for a in batched)
    assert len(set(batched)) > 1  # the answers really depend on the prompt


def test_answer_budget_covers_the_references():
    tok = char_tokenizer()
    refs = ["a" * n for n in range(1, 101)]
    assert answer_budget(tok, refs, quantile=1.0, margin=0) == 101  # longest answer + EOS
    assert answer_budget(tok, refs, quantile=0.5, margin=4) == 50 + 1 + 4
    with pytest.raises(ValueError, match="at least one reference"):
        answer_budget(tok, [])


def test_evaluate_task_scores_the_test_split(model_and_tokenizer):
    model, tok = model_and_tokenizer
    rows = [{"context": f"drug pair {i}", "query": "How severe?", "output": "contraindicated"} for i in range(4)]
    data = DatasetDict({"train": Dataset.from_list(rows), "test": Dataset.from_list(rows)})
    result = evaluate_task(model, tok, "ddi_severity", data, limit=3, batch_size=2, max_new_tokens=4)
    assert result["n"] == 3 and len(result["predictions"]) == 3
    assert set(result["metrics"]) == {"accuracy", "macro_f1"}
    assert all(0.0 <= v <= 1.0 for v in result["metrics"].values())
    with pytest.raises(ValueError, match="Unknown task"):
        evaluate_task(model, tok, "no_such_task", data)
    with pytest.raises(ValueError, match="batch_size"):
        generate_answers(model, tok, rows, batch_size=0)


def test_prompt_fn_replaces_the_template_in_generation(model_and_tokenizer):
    model, tok = model_and_tokenizer
    shots = "upper lung\nLUNG\n\n"  # e.g. a few-shot prefix or a chat template around the project prompt

    def prompt_fn(record):
        return shots + format_prompt(record)

    got = generate_answers(model, tok, RECORDS, batch_size=2, max_new_tokens=6, prompt_fn=prompt_fn)
    expected = []
    for record in RECORDS:
        ids = tok(prompt_fn(record), add_special_tokens=False, return_tensors="pt")
        with torch.no_grad():
            out = model.generate(**ids, max_new_tokens=6, do_sample=False, pad_token_id=tok.pad_token_id)
        text = tok.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)
        expected.append(text.split("\n###")[0].strip())
    assert got == expected
    assert got != generate_answers(model, tok, RECORDS, batch_size=2, max_new_tokens=6)  # the prompt matters
