"""The sequence router on models without input embeddings: a plain MLP (as in peft's custom-model tests) and a tiny
Llama driven by `inputs_embeds`, with peft's checklist: train, save/load, disable, delete, merge where allowed."""

from __future__ import annotations

import pytest
import torch
from peft import LoraConfig, PeftModel, get_peft_model
from torch import nn

import samdkif_peft  # noqa: F401  (registers SKILL_ROUTER)
from samdkif_peft import SkillRouterConfig

from .conftest import load_base, randomize_router


class MLP(nn.Module):
    """peft's own test model shape: no embeddings, no config, a float input."""

    def __init__(self):
        super().__init__()
        self.lin0 = nn.Linear(10, 20)
        self.relu = nn.ReLU()
        self.lin1 = nn.Linear(20, 20)
        self.lin2 = nn.Linear(20, 2)

    def forward(self, X):
        return self.lin2(self.relu(self.lin1(self.relu(self.lin0(X)))))


def _mlp(seed=0):
    torch.manual_seed(seed)
    return MLP()


@pytest.fixture(scope="module")
def mlp_skills(tmp_path_factory):
    root = tmp_path_factory.mktemp("mlp-skills")
    skills = {}
    for i, name in enumerate(("a", "b")):
        torch.manual_seed(10 + i)
        config = LoraConfig(r=2, lora_alpha=4, target_modules=["lin0", "lin1"], init_lora_weights=False)
        get_peft_model(_mlp(), config).save_pretrained(root / name)
        skills[name] = str(root / name)
    return skills


def test_sequence_router_on_a_plain_mlp(mlp_skills, tmp_path):
    config = SkillRouterConfig(skills=mlp_skills, router="sequence", task_rank=2)
    model = get_peft_model(_mlp(), config)
    assert model.peft_config["default"].sequence_input == "first_layer"  # no embeddings: the auto choice
    randomize_router(model)
    x = torch.randn(4, 10)
    out = model(x)
    assert out.shape == (4, 2)
    gates = model.base_model.get_routing_weights()
    assert set(gates) == {"lin0", "lin1"} and gates["lin0"].shape == (4, 2)
    assert not torch.allclose(gates["lin0"][0], gates["lin0"][1])  # per-input routing
    with model.disable_adapter():
        torch.testing.assert_close(model(x), _mlp()(x))  # the base model exactly
    # train: only router and task-LoRA parameters get gradients
    model.train()
    model(x).sum().backward()
    trained = {n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert trained and all("skill_router_" in n for n in trained)
    assert any("skill_router_gate" in n for n in trained)
    # save -> load: bit-exact
    model.eval()
    model.save_pretrained(tmp_path / "r")
    loaded = PeftModel.from_pretrained(_mlp(), tmp_path / "r")
    assert loaded.peft_config["default"].sequence_input == "first_layer"
    assert torch.equal(loaded(x), model(x))
    # delete, and a static router merges into the base weights
    loaded.base_model.delete_adapter("default")
    assert not any("skill_router_" in n for n, _ in loaded.named_parameters())
    torch.testing.assert_close(loaded.base_model.model(x), _mlp()(x))
    static = get_peft_model(_mlp(), SkillRouterConfig(skills=mlp_skills, router="static"))
    randomize_router(static)
    expected = static(x)
    torch.testing.assert_close(static.merge_and_unload()(x), expected, rtol=1e-5, atol=1e-6)


def test_sequence_embeddings_source_refused_where_there_are_none(mlp_skills):
    config = SkillRouterConfig(skills=mlp_skills, router="sequence", sequence_input="embeddings")
    with pytest.raises(ValueError, match="has no get_input_embeddings\\(\\); use sequence_input='first_layer'"):
        get_peft_model(_mlp(), config)
    with pytest.raises(ValueError, match="sequence_input='middle'"):
        SkillRouterConfig(skills=mlp_skills, sequence_input="middle")


@pytest.mark.parametrize("source", ["embeddings", "first_layer", "layer:1"])
def test_llama_driven_by_inputs_embeds(tiny_assets, source):
    config = SkillRouterConfig(skills=dict(tiny_assets["skills"]), task_type="CAUSAL_LM", sequence_input=source)
    model = get_peft_model(load_base(tiny_assets["base"]), config)
    randomize_router(model)
    model.eval()
    ids = torch.randint(3, 90, (2, 7))
    embeds = model.get_input_embeddings()(ids)
    with torch.no_grad():
        by_ids = model(input_ids=ids).logits
        gates_ids = model.base_model.get_routing_weights()
        by_embeds = model(inputs_embeds=embeds).logits
        gates_embeds = model.base_model.get_routing_weights()
    torch.testing.assert_close(by_embeds, by_ids)
    for key in gates_ids:
        torch.testing.assert_close(gates_embeds[key], gates_ids[key])
