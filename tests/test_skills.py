"""Skill normalisation (exact against peft's own layers), the fused layer as a property, and every bad input."""

from __future__ import annotations

import json
import os
import shutil
import warnings

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from peft import IA3Config, LoraConfig, PeftModel, get_peft_model
from peft.tuners.tuners_utils import BaseTunerLayer
from safetensors.torch import load_file

import samdkif_peft
from samdkif_peft import SkillRouterConfig
from samdkif_peft.skills import load_skill_factors, parse_skill_reference, resolve_skill
from samdkif_peft.tuner import Linear, RoutingState
from samdkif_peft.tuner.router import routing_weights

from .conftest import _save_base, load_base, make_lora_skill, randomize_router


def make_router(assets, skills=None, **kwargs):
    config = SkillRouterConfig(skills=skills or dict(assets["skills"]), task_type="CAUSAL_LM", **kwargs)
    return get_peft_model(load_base(assets["base"]), config)


# ---------------------------------------------------------------------------------------------------------------
# Normalisation: B'·A' must equal the delta peft itself applies, for LoRA, rsLoRA, patterns and pruned AdaLoRA.


@pytest.mark.parametrize("skill", ["alpha", "beta", "gamma"])
def test_canonical_factors_equal_peft_delta(tiny_assets, skill):
    path = tiny_assets["skills"][skill]
    factors = load_skill_factors(resolve_skill(parse_skill_reference(skill, path)))
    reference = PeftModel.from_pretrained(load_base(tiny_assets["base"]), path)
    deltas = {
        name.removeprefix("base_model.model."): module.get_delta_weight("default")
        for name, module in reference.named_modules()
        if isinstance(module, BaseTunerLayer)
    }
    assert set(deltas) == set(factors.modules)
    for module, (a, b) in factors.modules.items():
        torch.testing.assert_close(b @ a, deltas[module], rtol=1e-5, atol=1e-6)


def test_adalora_skill_is_pruned_per_module(tiny_assets):
    config = json.loads((tiny_assets["root"] / "skill-gamma" / "adapter_config.json").read_text())
    assert config["peft_type"] == "ADALORA" and config["rank_pattern"]
    factors = load_skill_factors(resolve_skill(parse_skill_reference("gamma", tiny_assets["skills"]["gamma"])))
    kept = {k.removesuffix(".lora_E"): sum(v) for k, v in config["rank_pattern"].items()}
    assert factors.ranks == kept
    assert len(set(kept.values())) > 1  # really different ranks per module


@pytest.mark.parametrize(
    "lora_kwargs",
    [
        {"r": 1, "lora_alpha": 3},
        {"r": 5, "lora_alpha": 2, "use_rslora": True},
        {"r": 2, "lora_alpha": 4, "rank_pattern": {"q_proj": 6}, "alpha_pattern": {"layers.1.self_attn.v_proj": 9}},
    ],
)
def test_lora_variants_normalize_exactly(tiny_assets, tmp_path, lora_kwargs):
    path = make_lora_skill(tiny_assets["base"], str(tmp_path / "s"), seed=11, **lora_kwargs)
    factors = load_skill_factors(resolve_skill(parse_skill_reference("s", path)))
    reference = PeftModel.from_pretrained(load_base(tiny_assets["base"]), path)
    for name, module in reference.named_modules():
        if isinstance(module, BaseTunerLayer):
            a, b = factors.modules[name.removeprefix("base_model.model.")]
            torch.testing.assert_close(b @ a, module.get_delta_weight("default"), rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------------------------------------------
# The fused layer equals the explicit sum Σ g_i ΔW_i x, for random ranks (including 0), sizes and gates.


@settings(max_examples=60, deadline=None)
@given(
    ranks=st.lists(st.integers(min_value=0, max_value=5), min_size=1, max_size=5),
    in_f=st.integers(1, 9),
    out_f=st.integers(1, 9),
    router=st.sampled_from(["static", "token", "sequence"]),
    top_k=st.one_of(st.none(), st.integers(1, 5)),
    null_expert=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_fused_layer_equals_explicit_sum(ranks, in_f, out_f, router, top_k, null_expert, seed):
    gen = torch.Generator().manual_seed(seed)
    n = len(ranks)
    top_k = None if top_k is None else min(top_k, n + int(null_expert))
    As = [torch.randn(r, in_f, generator=gen, dtype=torch.float64) for r in ranks]
    Bs = [torch.randn(out_f, r, generator=gen, dtype=torch.float64) for r in ranks]
    base = torch.nn.Linear(in_f, out_f, dtype=torch.float64)
    names = [f"s{i}" for i in range(n)]
    slots = torch.cat([torch.full((r,), i) for i, r in enumerate(ranks)]).long()
    routing = {"temperature": 0.7, "top_k": top_k, "null_expert": null_expert}
    state = RoutingState(names)
    layer = Linear(
        base, "default", skill_names=names, A=torch.cat(As, 0), B=torch.cat(Bs, 1), slots=slots, router=router,
        routing=routing, state=state, embed_dim=4,
    )  # fmt: skip
    with torch.no_grad():
        for p in layer.skill_router_gate.parameters():
            p.copy_(torch.randn(p.shape, generator=gen))
        layer.skill_router_gate.double()
        x = torch.randn(2, 3, in_f, generator=gen, dtype=torch.float64)
        state.pooled = torch.randn(2, 4, generator=gen, dtype=torch.float64)  # what the prompt hook would set
        gate_logits = layer.skill_router_gate["default"](x, state.pooled)
        g = routing_weights(gate_logits, 0.7, top_k, null_expert).double()  # (S,), (2, 1, S) or (2, 3, S)
        expected = base(x) + sum(g[..., i : i + 1] * (x @ As[i].T @ Bs[i].T) for i in range(n))
        torch.testing.assert_close(layer(x), expected)


def _fused_layer(n_skills: int, router: str) -> Linear:
    names = [f"s{i}" for i in range(n_skills)]
    ranks = [2 + i % 3 for i in range(n_skills)]
    slots = torch.cat([torch.full((r,), i) for i, r in enumerate(ranks)]).long()
    return Linear(
        torch.nn.Linear(8, 6), "default", skill_names=names, A=torch.randn(sum(ranks), 8),
        B=torch.randn(6, sum(ranks)), slots=slots, router=router,
        routing={"temperature": 1.0, "top_k": None, "null_expert": False}, state=RoutingState(names), embed_dim=None,
    )  # fmt: skip


@pytest.mark.parametrize("router", ["static", "token"])
def test_fused_layer_cost_does_not_grow_with_skills(router):
    """No Python loop over skills: the forward issues the same torch calls for 1 skill as for 7."""
    from torch.overrides import TorchFunctionMode

    class Record(TorchFunctionMode):
        def __init__(self):
            super().__init__()
            self.calls = []

        def __torch_function__(self, func, types, args=(), kwargs=None):
            self.calls.append(getattr(func, "__name__", str(func)))
            return func(*args, **(kwargs or {}))

    traces = []
    for n in (1, 7):
        layer, x = _fused_layer(n, router), torch.randn(2, 5, 8)
        with torch.no_grad(), Record() as record:
            layer(x)
        traces.append(record.calls)
    assert traces[0] == traces[1]
    assert traces[0].count("linear") == 3 + (router == "token")  # base, into rank space, out (+ token gate)


def test_routing_weights_options():
    logits = torch.tensor([2.0, 1.0, 0.0, -1.0])
    torch.testing.assert_close(routing_weights(logits, temperature=0.5), torch.softmax(logits / 0.5, -1))
    top2 = routing_weights(logits, top_k=2)
    torch.testing.assert_close(top2, torch.cat([torch.softmax(logits[:2], -1), torch.zeros(2)]))
    with_null = routing_weights(logits, null_expert=True)  # the last choice is "base model only"
    torch.testing.assert_close(with_null, torch.softmax(logits, -1)[:3])
    assert with_null.sum() < 1
    torch.testing.assert_close(routing_weights(torch.zeros(4), top_k=2), torch.full((4,), 0.25))  # ties: uniform
    # top-1: exactly one-hot in value, yet the router still gets a gradient (straight-through)
    leaf = logits.clone().requires_grad_(True)
    top1 = routing_weights(leaf, top_k=1)
    assert torch.equal(top1.detach(), torch.tensor([1.0, 0.0, 0.0, 0.0]))
    (top1 * torch.tensor([1.0, 2.0, 3.0, 4.0])).sum().backward()
    assert leaf.grad is not None and leaf.grad.abs().sum() > 0


# ---------------------------------------------------------------------------------------------------------------
# Bad input: each gets a clear, actionable error.


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        ({"skills": {}}, ValueError, "non-empty dict"),
        ({"skills": {"0": "x"}}, ValueError, "Invalid skill name '0'"),
        ({"skills": {"NER": "x"}}, ValueError, "lower-case slug"),
        ({"skills": {"ner": 3}}, TypeError, "path or Hub repo id"),
        ({"skills": {"ner": "x"}, "router": "moe"}, ValueError, "Unsupported router 'moe'"),
        ({"skills": {"ner": "x"}, "top_k": 2}, ValueError, "top_k must be an int in \\[1, 1\\]"),
        ({"skills": {"ner": "x"}, "temperature": 0}, ValueError, "temperature must be a positive"),
        ({"skills": {"ner": "x"}, "skill_lock": {"qa": {}}}, ValueError, "unknown skills \\['qa'\\]"),
    ],
)
def test_bad_config(kwargs, error, match):
    with pytest.raises(error, match=match):
        SkillRouterConfig(**kwargs)


def test_missing_skill_path(tiny_assets, tmp_path):
    with pytest.raises(FileNotFoundError, match="neither an existing directory nor a Hub reference"):
        make_router(tiny_assets, skills={"ner": str(tmp_path / "nope")})
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no adapter_config.json"):
        make_router(tiny_assets, skills={"ner": str(tmp_path / "empty")})


def test_dora_skill_rejected(tiny_assets, tmp_path):
    path = make_lora_skill(tiny_assets["base"], str(tmp_path / "dora"), seed=1, use_dora=True)
    with pytest.raises(ValueError, match="DoRA"):
        make_router(tiny_assets, skills={"alpha": tiny_assets["skills"]["alpha"], "dora": path})


def test_non_lora_skill_rejected(tiny_assets, tmp_path):
    model = get_peft_model(load_base(tiny_assets["base"]), IA3Config(target_modules=["q_proj", "v_proj"]))
    model.save_pretrained(tmp_path / "ia3")
    with pytest.raises(ValueError, match="IA3 adapter; skills must be LoRA or AdaLoRA"):
        make_router(tiny_assets, skills={"ia": str(tmp_path / "ia3")})


def test_embedding_target_rejected(tiny_assets, tmp_path):
    path = make_lora_skill(tiny_assets["base"], str(tmp_path / "emb"), seed=1, target_modules=["embed_tokens"])
    with pytest.raises(ValueError, match="only nn.Linear targets"):
        make_router(tiny_assets, skills={"emb": path})


def test_skills_with_different_targets_rejected(tiny_assets, tmp_path):
    path = make_lora_skill(tiny_assets["base"], str(tmp_path / "k"), seed=1, target_modules=["q_proj", "k_proj"])
    with pytest.raises(ValueError, match="adapt different modules: only 'other' has .*k_proj.*only 'alpha' has"):
        make_router(tiny_assets, skills={"alpha": tiny_assets["skills"]["alpha"], "other": path})


def test_skill_from_other_base_model_rejected(tiny_assets, tmp_path):
    """Weights decide, not names: a fingerprinted skill from other weights is refused, the same weights under another
    name load, and a skill without a fingerprint whose base name differs loads with a warning."""
    from samdkif_peft.skills.fingerprint import read_fingerprint, stamp_skill

    other_base = _save_base(tmp_path / "other-base", seed=5)
    path = make_lora_skill(other_base, str(tmp_path / "s"), seed=1)
    with pytest.warns(UserWarning, match=r"name another base model .*other-base.* no weights fingerprint"):
        make_router(tiny_assets, skills={"other": path})
    weights = os.path.join(path, "adapter_model.safetensors")
    before = load_file(weights)
    stamp_skill(path, load_base(other_base))
    assert all(torch.equal(before[k], v) for k, v in load_file(weights).items())  # tensors untouched
    assert read_fingerprint(weights)
    with pytest.raises(ValueError, match=r"Skill\(s\) \['other'\] were trained on other base weights"):
        make_router(tiny_assets, skills={"alpha": tiny_assets["skills"]["alpha"], "other": path})
    make_router(tiny_assets, skills={"other": path}, check_base_model=False)  # same shapes: allowed when opted out
    # the tiny base copied elsewhere: another name, the same weights -> no error, no warning
    copy = shutil.copytree(tiny_assets["base"], tmp_path / "renamed-base")
    same = make_lora_skill(str(copy), str(tmp_path / "same"), seed=1)
    stamp_skill(same, load_base(str(copy)))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        make_router(tiny_assets, skills={"same": same})
    assert not [w for w in caught if "base model" in str(w.message)]


def test_skill_with_wrong_shapes_rejected(tiny_assets, tmp_path):
    wide = _save_base(tmp_path / "wide", seed=5, hidden_size=48, intermediate_size=96)
    path = make_lora_skill(wide, str(tmp_path / "s"), seed=1)
    with pytest.raises(ValueError, match="does not fit module .*q_proj.*48 -> 48 features, the model's layer maps 32"):
        make_router(tiny_assets, skills={"wide": path}, check_base_model=False)


def test_pickled_skill_needs_opt_in(tiny_assets, tmp_path):
    model = PeftModel.from_pretrained(load_base(tiny_assets["base"]), tiny_assets["skills"]["alpha"])
    model.save_pretrained(tmp_path / "pickled", safe_serialization=False)
    assert not (tmp_path / "pickled" / "adapter_model.safetensors").exists()
    with pytest.raises(ValueError, match="Pickled weights can run code.*allow_pickle=True"):
        make_router(tiny_assets, skills={"alpha": str(tmp_path / "pickled")})
    pickled = make_router(tiny_assets, skills={"alpha": str(tmp_path / "pickled")}, allow_pickle=True)
    safe = make_router(tiny_assets, skills={"alpha": tiny_assets["skills"]["alpha"]})
    x = torch.randint(3, 90, (1, 5))
    with torch.no_grad():
        assert torch.equal(pickled(input_ids=x).logits, safe(input_ids=x).logits)


def test_changed_skill_detected_on_load(tiny_assets, tmp_path):
    skill = tmp_path / "skill"
    shutil.copytree(tiny_assets["skills"]["alpha"], skill)
    model = make_router(tiny_assets, skills={"alpha": str(skill)})
    model.save_pretrained(tmp_path / "router")
    make_lora_skill(tiny_assets["base"], str(skill), seed=42)  # retrained in place
    with pytest.raises(ValueError, match="Skill 'alpha' changed since this router was trained"):
        PeftModel.from_pretrained(load_base(tiny_assets["base"]), tmp_path / "router")


def test_torn_router_save_detected(tiny_assets, tmp_path):
    first, second = make_router(tiny_assets), make_router(tiny_assets)
    randomize_router(second, seed=1)
    first.save_pretrained(tmp_path / "a")
    second.save_pretrained(tmp_path / "b")
    shutil.copy(tmp_path / "b" / "adapter_model.safetensors", tmp_path / "a" / "adapter_model.safetensors")
    with pytest.raises(ValueError, match="do not match its adapter_config.json"):
        PeftModel.from_pretrained(load_base(tiny_assets["base"]), tmp_path / "a")


def test_forced_weights_validation(tiny_assets):
    model = make_router(tiny_assets)
    with pytest.raises(ValueError, match="Unknown skills \\['ner'\\]"):
        with model.base_model.force_skill_weights({"ner": 1.0}):
            pass
    with pytest.raises(ValueError, match="Expected 3 skill weights"):
        with model.base_model.force_skill_weights([1.0, 0.0]):
            pass


def test_unregistered_type_gets_import_hint(tiny_assets, tmp_path):
    import peft.mapping as mapping

    make_router(tiny_assets).save_pretrained(tmp_path / "r")
    tables = [getattr(mapping, f"PEFT_TYPE_TO_{kind}_MAPPING") for kind in ("CONFIG", "TUNER", "PREFIX")]
    saved = [table.pop("SKILL_ROUTER") for table in tables]
    try:
        with pytest.raises(KeyError, match="import samdkif_peft"):
            samdkif_peft.load_router(str(tmp_path / "r"), load_base(tiny_assets["base"]))
    finally:
        for table, value in zip(tables, saved):
            table["SKILL_ROUTER"] = value
    assert samdkif_peft.load_router(str(tmp_path / "r"), load_base(tiny_assets["base"])) is not None


def test_lora_skill_without_safetensors_weights(tiny_assets, tmp_path):
    shutil.copytree(tiny_assets["skills"]["alpha"], tmp_path / "s")
    (tmp_path / "s" / "adapter_model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="no adapter weights"):
        make_router(tiny_assets, skills={"alpha": str(tmp_path / "s")})


def test_lora_config_with_bias_rejected(tiny_assets, tmp_path):
    model = get_peft_model(
        load_base(tiny_assets["base"]), LoraConfig(r=2, target_modules=["q_proj", "v_proj"], bias="lora_only")
    )
    model.save_pretrained(tmp_path / "b")
    with pytest.raises(ValueError, match="trains biases"):
        make_router(tiny_assets, skills={"b": str(tmp_path / "b")})


def test_registration_refuses_clashes():
    import peft.mapping as mapping

    from samdkif_peft.tuner import SkillRouterModel, register_skill_router

    class Impostor(SkillRouterModel):
        pass

    with pytest.raises(ValueError, match="already registered by"):
        register_skill_router(SkillRouterConfig, Impostor)

    class WrongPrefix(SkillRouterModel):
        prefix = "lora_"

    with pytest.raises(ValueError, match="prefix must be 'skill_router_'"):
        register_skill_router(SkillRouterConfig, WrongPrefix)
    tables = [getattr(mapping, f"PEFT_TYPE_TO_{kind}_MAPPING") for kind in ("CONFIG", "TUNER", "PREFIX")]
    saved = [table.pop("SKILL_ROUTER") for table in tables]
    mapping.PEFT_TYPE_TO_PREFIX_MAPPING["SQUATTER"] = "skill_router_"
    try:
        with pytest.raises(ValueError, match="already used by PEFT type"):
            register_skill_router(SkillRouterConfig, SkillRouterModel)
    finally:
        del mapping.PEFT_TYPE_TO_PREFIX_MAPPING["SQUATTER"]
        for table, value in zip(tables, saved):
            table["SKILL_ROUTER"] = value
    register_skill_router(SkillRouterConfig, SkillRouterModel)  # idempotent
    assert list(mapping.PEFT_TYPE_TO_PREFIX_MAPPING.values()).count("skill_router_") == 1


def test_auto_loader_and_cli_give_import_hint(tiny_assets, tmp_path, monkeypatch):
    import argparse

    import peft.mapping as mapping

    import samdkif_cli as cli

    make_router(tiny_assets).save_pretrained(tmp_path / "r")
    tables = [getattr(mapping, f"PEFT_TYPE_TO_{kind}_MAPPING") for kind in ("CONFIG", "TUNER", "PREFIX")]
    saved = [table.pop("SKILL_ROUTER") for table in tables]
    try:
        with pytest.raises(KeyError, match="import samdkif_peft"):
            samdkif_peft.load_router(str(tmp_path / "r"))  # AutoPeftModelForCausalLM path

        def load(args):  # a CLI command that loads a router, while the type is unregistered
            PeftModel.from_pretrained(load_base(tiny_assets["base"]), args.router)

        parser = argparse.ArgumentParser()
        parser.add_subparsers(required=True).add_parser("load").set_defaults(func=load)
        parser._subparsers._group_actions[0].choices["load"].add_argument("router")
        monkeypatch.setattr(cli, "build_parser", lambda command=None: parser)
        with pytest.raises(KeyError, match="peft has no plugin discovery: `import samdkif_peft`"):
            cli.main(["load", str(tmp_path / "r")])
    finally:
        for table, value in zip(tables, saved):
            table["SKILL_ROUTER"] = value
    with pytest.raises(KeyError, match="other"):  # unrelated KeyErrors pass through untouched
        with samdkif_peft.registration_hint():
            raise KeyError("other")


def test_interrupted_save_never_loads_as_a_wrong_router(tiny_assets, tmp_path, monkeypatch):
    """The config is replaced atomically: a crash mid-save leaves the old config, no temp files, and a torn pair
    (new weights, old config) that loading refuses."""
    first, second = make_router(tiny_assets), make_router(tiny_assets)
    randomize_router(second, seed=1)
    first.save_pretrained(tmp_path / "r")
    old_config = (tmp_path / "r" / "adapter_config.json").read_text()

    def crash(fd):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(OSError, match="disk full"):
        second.save_pretrained(tmp_path / "r")
    monkeypatch.undo()
    assert (tmp_path / "r" / "adapter_config.json").read_text() == old_config
    assert not [f for f in os.listdir(tmp_path / "r") if f.startswith(".tmp-")]
    with pytest.raises(ValueError, match="the save was interrupted"):
        PeftModel.from_pretrained(load_base(tiny_assets["base"]), tmp_path / "r")


def test_bundle_needs_loaded_skills(tiny_assets, tmp_path):
    config = SkillRouterConfig(skills=dict(tiny_assets["skills"]), bundle_skills=True)
    with pytest.raises(ValueError, match="bundle_skills=True needs the skills loaded"):
        config.save_pretrained(str(tmp_path / "c"))


def test_fan_in_fan_out_skills_on_conv1d(tmp_path):
    """GPT-2's Conv1D stores W as (in, out): fan_in_fan_out skills normalise, mix and merge exactly."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    GPT2LMHeadModel(GPT2Config(vocab_size=96, n_embd=32, n_layer=2, n_head=4, n_positions=32)).save_pretrained(
        tmp_path / "gpt2"
    )

    def base():
        return GPT2LMHeadModel.from_pretrained(tmp_path / "gpt2").eval()

    skills = {}
    for i, name in enumerate(("s0", "s1")):
        torch.manual_seed(i)
        lora = LoraConfig(
            r=2 + i, lora_alpha=4, target_modules=["c_attn"], fan_in_fan_out=True, init_lora_weights=False
        )
        get_peft_model(base(), lora).save_pretrained(tmp_path / name)
        skills[name] = str(tmp_path / name)
    reference = PeftModel.from_pretrained(base(), skills["s1"]).eval()
    factors = load_skill_factors(resolve_skill(parse_skill_reference("s1", skills["s1"])))
    for name, module in reference.named_modules():
        if isinstance(module, BaseTunerLayer):
            a, b = factors.modules[name.removeprefix("base_model.model.")]
            torch.testing.assert_close((b @ a).T, module.get_delta_weight("default"), rtol=1e-5, atol=1e-6)

    model = get_peft_model(base(), SkillRouterConfig(skills=skills, router="static", task_type="CAUSAL_LM")).eval()
    x = torch.randint(3, 96, (2, 6))
    with torch.no_grad():
        with model.base_model.force_skill_weights({"s1": 1.0}):
            torch.testing.assert_close(model(input_ids=x).logits, reference(input_ids=x).logits, rtol=1e-5, atol=1e-5)
        randomize_router(model)
        expected = model(input_ids=x).logits
        merged = model.merge_and_unload()
        torch.testing.assert_close(merged(input_ids=x).logits, expected, rtol=1e-5, atol=1e-5)
