"""The hybrid: a skill router plus a task LoRA trained jointly with it (`SkillRouterConfig(task_rank=...)`)."""

from __future__ import annotations

import json
import warnings

import pytest
import torch
from peft import AutoPeftModelForCausalLM, PeftModel, get_peft_model
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

import samdkif_peft  # noqa: F401  (registers SKILL_ROUTER)
from samdkif_peft import SkillRouterConfig, SkillRouterLayer

from .conftest import VOCAB, load_base, randomize_router


ROUTERS = ["sequence", "token", "static"]


def make_hybrid(assets, router="sequence", task_rank=2, randomize=True, **kwargs):
    config = SkillRouterConfig(
        skills=dict(assets["skills"]), router=router, task_rank=task_rank, task_type="CAUSAL_LM", **kwargs
    )
    model = get_peft_model(load_base(assets["base"]), config)
    if randomize:  # task B starts at zero; give it weights so that it changes the output
        randomize_router(model, std=0.3)
    return model.eval()


def logits(model, inputs):
    with torch.no_grad():
        return model(**inputs).logits


def trainable(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.named_parameters() if v.requires_grad}


@pytest.mark.parametrize("bad", [-1, 1.5, True, "4"])
def test_task_rank_validated(tiny_assets, bad):
    with pytest.raises(ValueError, match="task_rank"):
        SkillRouterConfig(skills=dict(tiny_assets["skills"]), task_rank=bad)


@pytest.mark.parametrize("field,bad", [("task_alpha", 0), ("task_alpha", float("nan")), ("task_dropout", 1.0)])
def test_task_settings_validated(tiny_assets, field, bad):
    with pytest.raises(ValueError, match=field):
        SkillRouterConfig(skills=dict(tiny_assets["skills"]), task_rank=2, **{field: bad})


def test_task_scale_defaults_to_two():
    config = SkillRouterConfig(skills={"a": "x"}, task_rank=4)
    assert config.task_scale == 2.0
    assert SkillRouterConfig(skills={"a": "x"}, task_rank=4, task_alpha=2).task_scale == 0.5
    assert SkillRouterConfig(skills={"a": "x"}).task_scale == 0.0


@pytest.mark.parametrize("router", ROUTERS)
def test_starts_as_the_router_alone(tiny_assets, inputs, router):
    """Task B is zero-initialised, so the untrained hybrid computes exactly what the router alone does (in eval
    inference the task LoRA joins the skills' matmul, whose longer sum may round differently in float32)."""
    torch.manual_seed(0)
    hybrid = make_hybrid(tiny_assets, router, randomize=False)
    plain = get_peft_model(
        load_base(tiny_assets["base"]),
        SkillRouterConfig(skills=dict(tiny_assets["skills"]), router=router, task_type="CAUSAL_LM"),
    ).eval()
    with torch.enable_grad():  # nothing folded
        assert torch.equal(hybrid(**inputs).logits, plain(**inputs).logits)
    torch.testing.assert_close(logits(hybrid, inputs), logits(plain, inputs), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("router", ROUTERS)
def test_gradients_reach_router_and_task_adapter_only(tiny_assets, inputs, router):
    model = make_hybrid(tiny_assets, router, randomize=False)
    model.train()
    names = set(trainable(model))
    assert any("skill_router_task_A" in n for n in names) and any("skill_router_task_B" in n for n in names)
    assert any("skill_router_gate" in n for n in names)
    assert all("skill_router_" in n for n in names)
    model(**inputs, labels=inputs["input_ids"]).loss.backward()
    with_grad = {n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    # B starts at zero, so A gets no gradient on the first step (as in peft's LoRA); B and the gate do.
    assert any("skill_router_task_B" in n for n in with_grad) and any("skill_router_gate" in n for n in with_grad)
    assert with_grad <= names
    layer = next(m for m in model.modules() if isinstance(m, SkillRouterLayer))
    assert layer.skill_router_task_A["default"].weight.dtype == torch.float32


@pytest.mark.parametrize("router", ROUTERS)
def test_save_load_roundtrip(tiny_assets, tmp_path, inputs, router):
    model = make_hybrid(tiny_assets, router, task_rank=3, task_alpha=5)
    expected, state = logits(model, inputs), trainable(model)
    assert not torch.equal(expected, logits(make_hybrid(tiny_assets, router, randomize=False), inputs))
    model.save_pretrained(tmp_path / "hybrid")
    saved = load_file(tmp_path / "hybrid" / "adapter_model.safetensors")
    assert {k.split("skill_router_")[1].split(".")[0] for k in saved} == {"gate", "task_A", "task_B"}
    assert sum(v.numel() for v in saved.values()) == sum(v.numel() for v in state.values())
    config = json.loads((tmp_path / "hybrid" / "adapter_config.json").read_text())
    assert (config["task_rank"], config["task_alpha"]) == (3, 5)
    assert "a task LoRA of rank 3 (alpha 5)" in (tmp_path / "hybrid" / "README.md").read_text()

    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # no missing or unexpected adapter keys
        loaded = PeftModel.from_pretrained(load_base(tiny_assets["base"]), tmp_path / "hybrid")
    auto = AutoPeftModelForCausalLM.from_pretrained(tmp_path / "hybrid")
    native = AutoModelForCausalLM.from_pretrained(tmp_path / "hybrid").eval()
    for other in (loaded, auto, native):
        assert torch.equal(logits(other, inputs), expected)
    got = {k: v for k, v in loaded.named_parameters() if "skill_router_" in k}
    assert got.keys() == state.keys() and all(torch.equal(got[k], state[k]) for k in state)


def test_static_hybrid_merges_exactly(tiny_assets, inputs):
    model = make_hybrid(tiny_assets, "static")
    expected = logits(model, inputs)
    merged = model.merge_and_unload()
    assert not any(isinstance(m, SkillRouterLayer) for m in merged.modules())
    torch.testing.assert_close(logits(merged, inputs), expected, rtol=1e-5, atol=1e-5)


def test_static_hybrid_unmerge_restores_base(tiny_assets, inputs):
    model = make_hybrid(tiny_assets, "static")
    layer = model.base_model.model.model.layers[0].self_attn.q_proj
    w0 = layer.get_base_layer().weight.detach().clone()
    expected = logits(model, inputs)
    model.merge_adapter()
    torch.testing.assert_close(logits(model, inputs), expected, rtol=1e-5, atol=1e-5)
    model.unmerge_adapter()
    torch.testing.assert_close(layer.get_base_layer().weight, w0, rtol=0, atol=1e-6)


@pytest.mark.parametrize("router", ["sequence", "token"])
def test_input_dependent_hybrid_refuses_merge(tiny_assets, router):
    with pytest.raises(ValueError, match="merge|static"):
        make_hybrid(tiny_assets, router).merge_and_unload()


@pytest.mark.parametrize("router", ROUTERS)
def test_disable_adapter_is_base_model(tiny_assets, inputs, router):
    model = make_hybrid(tiny_assets, router)
    base = load_base(tiny_assets["base"]).eval()
    with model.disable_adapter():
        assert torch.equal(logits(model, inputs), logits(base, inputs))


def test_forced_skill_weights_keep_the_task_adapter(tiny_assets, inputs):
    """`force_skill_weights({})` removes the skills only: what is left is base + task LoRA, not the base model."""
    model = make_hybrid(tiny_assets, "sequence")
    base = load_base(tiny_assets["base"]).eval()
    with model.base_model.force_skill_weights({}):
        no_skills = logits(model, inputs)
    assert not torch.equal(no_skills, logits(base, inputs))
    assert not torch.equal(no_skills, logits(model, inputs))


@pytest.mark.parametrize("router", ["static", "sequence"])
def test_folded_decoding_matches_uncached(tiny_assets, router):
    """In eval decoding the task LoRA joins the skills' matmuls (`_mixing`); greedy tokens and scores must match the
    cache-free run, and dropping the task adapter's output must change them."""
    model = make_hybrid(tiny_assets, router, task_rank=3)
    prompt = torch.randint(3, VOCAB, (1, 6), generator=torch.Generator().manual_seed(2))
    gen = dict(max_new_tokens=8, do_sample=False, pad_token_id=0, output_scores=True, return_dict_in_generate=True)
    with torch.no_grad():
        cached = model.generate(input_ids=prompt, use_cache=True, **gen)
        uncached = model.generate(input_ids=prompt, use_cache=False, **gen)
    with torch.enable_grad():  # autograd on: nothing is folded or reused
        unfolded = model(input_ids=cached.sequences).logits.detach()
    assert torch.equal(cached.sequences, uncached.sequences)
    torch.testing.assert_close(torch.stack(cached.scores), torch.stack(uncached.scores), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(logits(model, {"input_ids": cached.sequences}), unfolded, rtol=1e-5, atol=1e-5)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "skill_router_task_B" in name:
                p.zero_()
    assert not torch.allclose(logits(model, {"input_ids": cached.sequences}), unfolded, atol=1e-4)


def test_task_lora_joins_the_matmuls_under_per_row_gates(tiny_assets):
    """A batch of different prompts has a sequence router's gates per row: the task LoRA still joins A and B (gate 1,
    its scale in B), and the result equals the unfused computation (autograd on)."""
    model = make_hybrid(tiny_assets, "sequence", task_rank=3)
    batch = {"input_ids": torch.randint(3, VOCAB, (3, 7), generator=torch.Generator().manual_seed(5))}
    fused = logits(model, batch)
    layer = next(m for m in model.modules() if isinstance(m, SkillRouterLayer))
    _, slot_w, A, B, task_folded = layer._fixed_mixing["default"][1]
    assert task_folded and slot_w.shape[0] == 3 and slot_w.shape[-1] == A.shape[0] == B.shape[1]
    assert not torch.equal(slot_w[0], slot_w[1])  # gates per row, not one set folded into B
    assert torch.equal(slot_w[..., -3:], torch.ones_like(slot_w[..., -3:]))
    task_B = layer.skill_router_task_B["default"].weight
    torch.testing.assert_close(B[:, -3:], task_B * layer.task_scale["default"])
    with torch.enable_grad():  # nothing fused or reused
        unfused = model(**batch).logits.detach()
    torch.testing.assert_close(fused, unfused, rtol=1e-5, atol=1e-5)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "skill_router_task_B" in name:
                p.zero_()
    assert not torch.allclose(logits(model, batch), fused, atol=1e-4)  # the task LoRA was in the fused output
