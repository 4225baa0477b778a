"""`gate_scope`: adapted modules share one gate per decoder block or per model, through training, saving and every
load path; a kind that reads the layer's input refuses to share across input sizes."""

from __future__ import annotations

import json
import warnings

import pytest
import torch
from peft import AutoPeftModelForCausalLM, PeftModel, get_peft_model

import samdkif_peft  # noqa: F401  (registers SKILL_ROUTER)
from samdkif_peft import SkillRouterConfig
from samdkif_peft.tuner.layer import SkillRouterLayer

from .conftest import load_base, make_lora_skill, randomize_router


def _gates(model) -> dict[str, torch.nn.Module]:
    return {k: m.skill_router_gate["default"] for k, m in model.named_modules() if isinstance(m, SkillRouterLayer)}


def _router(tiny_assets, **kwargs):
    config = SkillRouterConfig(skills=dict(tiny_assets["skills"]), task_type="CAUSAL_LM", **kwargs)
    return get_peft_model(load_base(tiny_assets["base"]), config)


@pytest.mark.parametrize("router", ["sequence", "token", "static"])
@pytest.mark.parametrize("scope, n_gates", [("module", 4), ("layer", 2), ("model", 1)])
def test_modules_share_one_gate_per_scope(tiny_assets, router, scope, n_gates):
    model = _router(tiny_assets, router=router, gate_scope=scope)
    gates = _gates(model)
    assert len(gates) == 4  # 2 blocks x (q_proj, v_proj)
    assert len({id(g) for g in gates.values()}) == n_gates
    if scope == "layer":  # q_proj and v_proj of one block, never two blocks
        for key, gate in gates.items():
            if key.endswith("q_proj"):
                assert gate is gates[key.replace("q_proj", "v_proj")]
    one_gate = sum(p.numel() for p in next(iter(gates.values())).parameters())
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == n_gates * one_gate


def test_a_shared_gate_gets_the_sum_of_its_modules_gradients(tiny_assets, inputs):
    """One gate for the model computes what per-module gates holding the same values compute, and its gradient is
    the sum of theirs: sharing changes what is trained, not the forward."""
    shared = _router(tiny_assets, router="token", gate_scope="model", task_rank=2)
    per_module = _router(tiny_assets, router="token", task_rank=2)
    randomize_router(shared)
    (gate,) = {id(g): g for g in _gates(shared).values()}.values()
    with torch.no_grad():
        for own in _gates(per_module).values():
            for p, q in zip(own.parameters(), gate.parameters(), strict=True):
                p.copy_(q)
        task = {k: v for k, v in shared.state_dict().items() if "skill_router_task" in k}
        per_module.load_state_dict(task, strict=False)
    labels = inputs["input_ids"]
    losses = [m(**inputs, labels=labels).loss for m in (shared, per_module)]
    assert torch.equal(losses[0], losses[1])
    for loss in losses:
        loss.backward()
    own_grads = [[q.grad for q in g.parameters()] for g in _gates(per_module).values()]
    for i, p in enumerate(gate.parameters()):
        assert p.grad is not None and p.grad.abs().sum() > 0
        torch.testing.assert_close(p.grad, sum(grads[i] for grads in own_grads))


@pytest.mark.parametrize("scope", ["layer", "model"])
def test_shared_gates_round_trip_on_every_load_path(tiny_assets, tmp_path, inputs, scope):
    model = _router(tiny_assets, router="sequence", gate_scope=scope, task_rank=2)
    randomize_router(model)
    model.eval()
    with torch.no_grad():
        expected = model(**inputs).logits
    model.save_pretrained(tmp_path / "r")

    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # no missing or unexpected adapter keys
        loaded = PeftModel.from_pretrained(load_base(tiny_assets["base"]), tmp_path / "r", is_trainable=True)
    auto = AutoPeftModelForCausalLM.from_pretrained(tmp_path / "r")
    via_load_adapter = load_base(tiny_assets["base"])
    via_load_adapter.load_adapter(str(tmp_path / "r"))
    assert loaded.peft_config["default"].gate_scope == scope
    for other in (loaded, auto, via_load_adapter):
        other.eval()
        with torch.no_grad():
            assert torch.equal(other(**inputs).logits, expected)
        # tied again on load, so a resumed or further-trained router keeps training one gate per group
        assert len({id(g) for g in _gates(other).values()}) == (2 if scope == "layer" else 1)
    card = (tmp_path / "r" / "README.md").read_text()
    assert "gates shared per: " + scope in card
    # a shared gate is saved under every module's key, but the card counts what trains
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert f"({trainable} parameters)" in card


def test_the_default_gate_scope_is_one_gate_alone_and_per_module_in_the_hybrid(tiny_assets):
    skills = dict(tiny_assets["skills"])
    assert SkillRouterConfig(skills=skills).gate_scope == "model"  # the router alone: what train_router uses
    assert SkillRouterConfig(skills=skills, task_rank=2).gate_scope == "module"
    assert SkillRouterConfig(skills=skills, task_rank=2, gate_scope="layer").gate_scope == "layer"
    assert SkillRouterConfig(skills=skills, router="static").gate_scope == "model"
    assert SkillRouterConfig(skills=skills, router="token").gate_scope == "module"  # it reads each layer's input
    assert len({id(g) for g in _gates(_router(tiny_assets, task_rank=2)).values()}) == 4


def test_a_default_router_alone_reloads_with_one_gate(tiny_assets, tmp_path):
    """The resolved scope is saved, so reloading cannot mistake the new router for one saved before the option."""
    model = _router(tiny_assets)
    assert len({id(g) for g in _gates(model).values()}) == 1
    model.save_pretrained(tmp_path / "r")
    assert json.loads((tmp_path / "r" / "adapter_config.json").read_text())["gate_scope"] == "model"
    loaded = PeftModel.from_pretrained(load_base(tiny_assets["base"]), tmp_path / "r")
    assert loaded.peft_config["default"].gate_scope == "model"
    assert len({id(g) for g in _gates(loaded).values()}) == 1


@pytest.mark.parametrize("sha256", [True, False], ids=["safetensors", "no weights sha256"])
def test_a_router_saved_before_gate_scope_existed_loads_with_a_gate_per_module(tiny_assets, tmp_path, inputs, sha256):
    """Its config has no gate_scope: it must load as trained (four gates), not with the new default's one gate
    (which would take the last module's saved values for all four, a silently different router). A pickled save
    records no weights sha256; its skill pins tell it is a saved router."""
    model = _router(tiny_assets, router="sequence", gate_scope="module")
    randomize_router(model)
    model.eval()
    with torch.no_grad():
        expected = model(**inputs).logits
    model.save_pretrained(tmp_path / "old")
    config_file = tmp_path / "old" / "adapter_config.json"
    saved = json.loads(config_file.read_text())
    del saved["gate_scope"]
    if not sha256:
        saved["router_weights_sha256"] = None
    config_file.write_text(json.dumps(saved))

    loaded = PeftModel.from_pretrained(load_base(tiny_assets["base"]), tmp_path / "old")
    auto = AutoPeftModelForCausalLM.from_pretrained(tmp_path / "old")
    via_load_adapter = load_base(tiny_assets["base"])
    via_load_adapter.load_adapter(str(tmp_path / "old"))
    assert loaded.peft_config["default"].gate_scope == "module"
    for other in (loaded, auto, via_load_adapter):
        assert len({id(g) for g in _gates(other).values()}) == 4
        with torch.no_grad():
            assert torch.equal(other.eval()(**inputs).logits, expected)


def test_token_gates_refuse_to_share_across_input_sizes(tiny_assets, tmp_path):
    # q_proj reads the hidden state (32 wide), down_proj the MLP's (64): one token router cannot read both
    skill = make_lora_skill(tiny_assets["base"], str(tmp_path / "wide"), 5, target_modules=["q_proj", "down_proj"])
    skills = {"wide": skill}
    for scope in ("layer", "model"):
        config = SkillRouterConfig(skills=skills, router="token", gate_scope=scope, task_type="CAUSAL_LM")
        with pytest.raises(ValueError, match=rf"gate_scope='{scope}' would share one 'token' router .*input size"):
            get_peft_model(load_base(tiny_assets["base"]), config)
    # by default a token router keeps a gate per module, so such skills work without a gate_scope
    config = SkillRouterConfig(skills=skills, router="token", task_type="CAUSAL_LM")
    assert len({id(g) for g in _gates(get_peft_model(load_base(tiny_assets["base"]), config)).values()}) == 4
    # a gate that ignores the layer's input can serve both
    config = SkillRouterConfig(skills=skills, router="sequence", gate_scope="model", task_type="CAUSAL_LM")
    assert len({id(g) for g in _gates(get_peft_model(load_base(tiny_assets["base"]), config)).values()}) == 1


def test_bad_gate_scope_is_refused(tiny_assets):
    with pytest.raises(ValueError, match=r"gate_scope='block'; choose from \('module', 'layer', 'model'\)"):
        SkillRouterConfig(skills=dict(tiny_assets["skills"]), gate_scope="block")


def test_cli_offers_gate_scope():
    from samdkif_cli import build_parser

    args = ["train", "router", "nli", "--skills", "a=b", "--out", "o", "--gate-scope", "layer"]
    assert build_parser("train").parse_args(args).gate_scope == "layer"
