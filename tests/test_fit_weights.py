"""LoRAHub-style gradient-free skill weights (`fit_skill_weights`) on a tiny Llama with two random skills."""

from __future__ import annotations

import pytest
import torch
from peft import get_peft_model

from samdkif_peft import SkillRouterConfig
from samdkif_peft.data.templates import format_prompt
from samdkif_peft.training import fit_skill_weights

from .conftest import char_tokenizer, load_base, make_lora_skill, save_char_base


@pytest.fixture(scope="module")
def router(tmp_path_factory):
    root = tmp_path_factory.mktemp("fit")
    base = save_char_base(root / "base")
    skills = {name: make_lora_skill(base, str(root / name), seed=seed) for name, seed in (("a", 3), ("b", 4))}
    model = get_peft_model(load_base(base), SkillRouterConfig(skills=skills, task_type="CAUSAL_LM"))
    return model, char_tokenizer()


def _records_answered_by(model, tokenizer, weights):
    """Records whose outputs are the model's own greedy answers under fixed skill weights: their optimum is known."""
    records = [{"context": w, "query": "echo", "output": ""} for w in ("kidney", "liver", "lung", "heart", "spleen")]
    with model.base_model.force_skill_weights(weights), torch.no_grad():
        for record in records:
            ids = tokenizer(format_prompt(record), return_tensors="pt").input_ids
            out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=6, do_sample=False)
            record["output"] = tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True) or "x"
    return records


def test_fit_finds_the_skill_that_wrote_the_answers(router):
    model, tokenizer = router
    records = _records_answered_by(model, tokenizer, {"a": 1.5})
    params = {n: p.clone() for n, p in model.named_parameters()}
    fit = fit_skill_weights(model, tokenizer, records, budget=40, seed=0)
    assert set(fit.weights) == {"a", "b"} and len(fit.history) == 40  # exactly the budget
    assert all(-1.5 <= w <= 1.5 for w in fit.weights.values())
    assert fit.loss < fit.initial_loss  # better than the base model (all-zero weights)
    assert fit.weights["a"] > fit.weights["b"]
    assert all(torch.equal(p, params[n]) for n, p in model.named_parameters())  # nothing trained


def test_fit_validates_its_input(router):
    model, tokenizer = router
    with pytest.raises(ValueError, match="at least one record"):
        fit_skill_weights(model, tokenizer, [])
    calls = []
    handle = model.get_base_model().register_forward_hook(lambda *_: calls.append(1))
    try:
        fit = fit_skill_weights(model, tokenizer, [{"query": "q", "output": "o"}], budget=3, l1=0.05)
    finally:
        handle.remove()
    assert len(fit.history) == 3 and len(calls) == 4  # the budget plus the base model's loss, nothing evaluated twice
    penalty = 0.05 * sum(abs(w) for w in fit.weights.values()) / len(fit.weights)
    assert fit.loss + penalty == pytest.approx(min(v for _, v in fit.history))  # the loss is the best candidate's
    with pytest.raises(ValueError, match="budget"):
        fit_skill_weights(model, tokenizer, [{"query": "q", "output": "o"}], budget=0)
