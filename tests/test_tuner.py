"""SKILL_ROUTER behaviour, in the spirit of peft's PeftCommonTester, over all three router kinds."""

from __future__ import annotations

import json
import os
import warnings

import pytest
import torch
from peft import AutoPeftModelForCausalLM, PeftConfig, PeftModel, get_peft_model
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

import samdkif_peft  # noqa: F401  (registers SKILL_ROUTER)
from samdkif_peft import SkillRouterConfig, SkillRouterLayer

from .conftest import VOCAB, load_base, randomize_router


ROUTERS = ["sequence", "token", "static"]
TEST_CASES = [
    ("sequence router", {"router": "sequence"}),
    ("token router", {"router": "token"}),
    ("static router", {"router": "static"}),
    ("sequence top-2 null", {"router": "sequence", "top_k": 2, "null_expert": True}),
    ("token top-1 T=0.5", {"router": "token", "top_k": 1, "temperature": 0.5}),
    ("sequence from first layer", {"router": "sequence", "sequence_input": "first_layer"}),
    ("sequence from block 1", {"router": "sequence", "sequence_input": "layer:1"}),
]
IDS = [name for name, _ in TEST_CASES]
CASES = [kwargs for _, kwargs in TEST_CASES]


def make_router(assets, base=None, **kwargs):
    config = SkillRouterConfig(skills=dict(assets["skills"]), task_type="CAUSAL_LM", **kwargs)
    model = get_peft_model(base if base is not None else load_base(assets["base"]), config)
    randomize_router(model)
    return model.eval()


def router_state(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.named_parameters() if "skill_router_" in k}


def logits(model, inputs) -> torch.Tensor:
    with torch.no_grad():
        return model(**inputs).logits


# ---------------------------------------------------------------------------------------------------------------
# Registration and construction


def test_registered_with_peft():
    import peft.mapping as mapping

    assert mapping.PEFT_TYPE_TO_CONFIG_MAPPING["SKILL_ROUTER"] is SkillRouterConfig
    assert mapping.PEFT_TYPE_TO_PREFIX_MAPPING["SKILL_ROUTER"] == "skill_router_"
    assert list(mapping.PEFT_TYPE_TO_PREFIX_MAPPING.values()).count("skill_router_") == 1
    import importlib

    importlib.reload(importlib.import_module("samdkif_peft.tuner"))  # idempotent re-registration
    assert list(mapping.PEFT_TYPE_TO_PREFIX_MAPPING.values()).count("skill_router_") == 1


@pytest.mark.parametrize("kwargs", CASES, ids=IDS)
def test_only_router_is_trainable(tiny_assets, kwargs, capsys):
    model = make_router(tiny_assets, **kwargs)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("skill_router_" in n for n in trainable)
    assert trainable == {n for n, _ in model.named_parameters() if "skill_router_" in n}
    # skill factors are frozen buffers, not parameters
    assert any(".skills_A." in n for n, _ in model.named_buffers())
    n_trainable, _ = model.get_nb_trainable_parameters()
    assert n_trainable == sum(p.numel() for n, p in model.named_parameters() if "skill_router_" in n)
    model.print_trainable_parameters()
    assert f"trainable params: {n_trainable:,} " in capsys.readouterr().out


def test_layer_is_fused_over_skills(tiny_assets):
    model = make_router(tiny_assets, router="token")
    layer = model.base_model.model.model.layers[0].self_attn.v_proj
    assert isinstance(layer, SkillRouterLayer)
    ranks = {"alpha": 4, "beta": 3}  # beta has rank_pattern v_proj=3; gamma is pruned by AdaLoRA
    slots = layer.skill_slots["default"]
    assert slots.tolist()[:7] == [0] * 4 + [1] * 3
    assert layer.skills_A["default"].shape[0] == slots.numel() >= sum(ranks.values())


# ---------------------------------------------------------------------------------------------------------------
# Save / load on every load path


@pytest.mark.parametrize("kwargs", CASES, ids=IDS)
def test_save_load_roundtrip_all_paths(tiny_assets, tmp_path, inputs, kwargs):
    model = make_router(tiny_assets, **kwargs)
    expected_logits = logits(model, inputs)
    expected = router_state(model)
    model.save_pretrained(tmp_path / "router")

    files = sorted(os.listdir(tmp_path / "router"))
    assert files == ["README.md", "adapter_config.json", "adapter_model.safetensors"]
    saved = load_file(tmp_path / "router" / "adapter_model.safetensors")
    assert saved and all("skill_router_gate" in k for k in saved)  # router weights only, no skill factors
    # every module's key, a shared gate (gate_scope) under each of them
    router_keys = {k.replace(".default", "") for k in model.state_dict() if "skill_router_" in k}
    assert set(saved) == router_keys
    config = json.loads((tmp_path / "router" / "adapter_config.json").read_text())
    assert config["peft_type"] == "SKILL_ROUTER"
    assert set(config["skill_lock"]) == set(tiny_assets["skills"])

    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # "Found missing adapter keys" must not appear
        loaded = PeftModel.from_pretrained(load_base(tiny_assets["base"]), tmp_path / "router")
    auto = AutoPeftModelForCausalLM.from_pretrained(tmp_path / "router")
    native = AutoModelForCausalLM.from_pretrained(tmp_path / "router")
    via_load_adapter = load_base(tiny_assets["base"])
    via_load_adapter.load_adapter(str(tmp_path / "router"))

    for other in (loaded, auto):
        state = router_state(other)
        assert state.keys() == expected.keys()
        assert all(torch.equal(state[k], expected[k]) for k in expected)
    for other in (native, via_load_adapter):  # transformers' loader: same parameters, without the PeftModel prefix
        state = {"base_model.model." + k: v for k, v in router_state(other).items()}
        assert state.keys() == expected.keys()
        assert all(torch.equal(state[k], expected[k]) for k in expected)
    peft_config = PeftConfig.from_pretrained(tmp_path / "router")
    assert isinstance(peft_config, SkillRouterConfig) and peft_config.skills == model.peft_config["default"].skills
    assert peft_config.router == kwargs["router"] and peft_config.top_k == kwargs.get("top_k")
    assert peft_config.null_expert == kwargs.get("null_expert", False)
    for other in (loaded, auto, native.eval(), via_load_adapter):
        assert torch.equal(logits(other, inputs), expected_logits)


def test_loaded_router_is_frozen_unless_trainable(tiny_assets, tmp_path):
    make_router(tiny_assets).save_pretrained(tmp_path / "r")
    frozen = PeftModel.from_pretrained(load_base(tiny_assets["base"]), tmp_path / "r")
    assert not any(p.requires_grad for p in frozen.parameters())
    trainable = PeftModel.from_pretrained(load_base(tiny_assets["base"]), tmp_path / "r", is_trainable=True)
    names = {n for n, p in trainable.named_parameters() if p.requires_grad}
    assert names and all("skill_router_" in n for n in names)


@pytest.mark.parametrize("router", ROUTERS)
def test_load_adapter_under_another_name_keeps_router(tiny_assets, tmp_path, inputs, router):
    model = make_router(tiny_assets, router=router)
    expected = {
        k.removeprefix("base_model.model.").replace(".default.", ".icd."): v for k, v in router_state(model).items()
    }
    model.save_pretrained(tmp_path / "r")
    native = load_base(tiny_assets["base"])
    native.load_adapter(str(tmp_path / "r"), adapter_name="icd")
    state = router_state(native)
    assert state.keys() == expected.keys() and all(torch.equal(state[k], expected[k]) for k in expected)
    assert torch.equal(logits(native, inputs), logits(model, inputs))


def test_transformers_loader_refuses_what_it_cannot_resolve(tiny_assets, tmp_path, monkeypatch):
    """transformers builds the config without the router's location: bundled/relative skills are a clear error."""
    import shutil

    config = SkillRouterConfig(skills=dict(tiny_assets["skills"]), task_type="CAUSAL_LM", bundle_skills=True)
    get_peft_model(load_base(tiny_assets["base"]), config).save_pretrained(tmp_path / "bundled")
    with pytest.raises(ValueError, match="bundled in the router repo .* location is unknown .*PeftModel.from_pre"):
        AutoModelForCausalLM.from_pretrained(tmp_path / "bundled")
    with pytest.raises(ValueError, match="location is unknown"):
        load_base(tiny_assets["base"]).load_adapter(str(tmp_path / "bundled"))

    shutil.copytree(tiny_assets["skills"]["alpha"], tmp_path / "rel" / "skills" / "alpha")
    monkeypatch.chdir(tmp_path / "rel")
    config = SkillRouterConfig(skills={"alpha": "./skills/alpha"}, task_type="CAUSAL_LM")
    get_peft_model(load_base(tiny_assets["base"]), config).save_pretrained(tmp_path / "rel")
    monkeypatch.chdir(tmp_path)
    assert PeftModel.from_pretrained(load_base(tiny_assets["base"]), tmp_path / "rel") is not None  # relative to it
    # transformers' loader does not say where the router is, but the router remembers where its local skills were
    load_base(tiny_assets["base"]).load_adapter(str(tmp_path / "rel"))
    shutil.move(tmp_path / "rel" / "skills", tmp_path / "moved")
    with pytest.raises(FileNotFoundError, match="'alpha' was a local folder when this router was saved and is not"):
        load_base(tiny_assets["base"]).load_adapter(str(tmp_path / "rel"))


def test_skill_names_never_collide_with_module_paths(tiny_assets, tmp_path, inputs):
    """Skill names that equal module-path segments or the adapter name must not leak into (and break) the keys."""
    paths = tiny_assets["skills"]
    skills = {"default": paths["alpha"], "model": paths["beta"], "q_proj": paths["gamma"]}
    model = get_peft_model(load_base(tiny_assets["base"]), SkillRouterConfig(skills=skills, task_type="CAUSAL_LM"))
    randomize_router(model)
    expected, expected_logits = router_state(model), logits(model.eval(), inputs)
    with model.base_model.force_skill_weights({"q_proj": 1.0}):  # the gamma skill, whatever its name
        gamma_only = logits(model, inputs)
    model.save_pretrained(tmp_path / "r")
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        loaded = PeftModel.from_pretrained(load_base(tiny_assets["base"]), tmp_path / "r")
    state = router_state(loaded)
    assert state.keys() == expected.keys() and all(torch.equal(state[k], expected[k]) for k in expected)
    assert torch.equal(logits(loaded, inputs), expected_logits)
    alone = PeftModel.from_pretrained(load_base(tiny_assets["base"]), paths["gamma"]).eval()
    torch.testing.assert_close(gamma_only, logits(alone, inputs), rtol=1e-5, atol=1e-5)


def test_bundled_skills_resolve_relative_to_router(tiny_assets, tmp_path, inputs):
    import shutil

    skills = {}
    for name, path in tiny_assets["skills"].items():  # private copies we can delete afterwards
        skills[name] = str(tmp_path / "src" / name)
        shutil.copytree(path, skills[name])
    config = SkillRouterConfig(skills=skills, task_type="CAUSAL_LM", bundle_skills=True)
    model = get_peft_model(load_base(tiny_assets["base"]), config)
    randomize_router(model)
    expected = logits(model.eval(), inputs)
    model.save_pretrained(tmp_path / "router")
    shutil.rmtree(tmp_path / "src")
    shutil.move(tmp_path / "router", tmp_path / "moved")  # relative, so moving the folder keeps it loadable

    saved = json.loads((tmp_path / "moved" / "adapter_config.json").read_text())
    assert saved["skills"] == {name: f"skill_{name}" for name in skills}
    loaded = PeftModel.from_pretrained(load_base(tiny_assets["base"]), tmp_path / "moved")
    assert torch.equal(logits(loaded, inputs), expected)


# ---------------------------------------------------------------------------------------------------------------
# Training


@pytest.mark.parametrize("kwargs", CASES, ids=IDS)
def test_training_changes_only_router(tiny_assets, inputs, kwargs):
    model = make_router(tiny_assets, **kwargs)
    model.train()
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    buffers = {k: v.detach().clone() for k, v in model.named_buffers()}
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model(**inputs, labels=inputs["input_ids"]).loss.backward()
    with_grad = {n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    optimizer.step()
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert with_grad and all("skill_router_" in n for n in with_grad)
    assert changed and all("skill_router_" in k for k in changed)
    assert all(torch.equal(v, dict(model.named_buffers())[k]) for k, v in buffers.items())


@pytest.mark.parametrize("router", [*ROUTERS, "sequence/first_layer", "sequence/layer:1"])
@pytest.mark.parametrize("use_reentrant", [True, False])
def test_gradient_checkpointing_parity(tiny_assets, tmp_path, inputs, router, use_reentrant):
    kind, _, source = router.partition("/")
    make_router(tiny_assets, router=kind, sequence_input=source or None).save_pretrained(tmp_path / "r")
    labels = inputs["input_ids"].clone()
    labels[:, :3] = -100  # a prompt for the sequence router to route on
    grads = []
    for checkpointing in (False, True):
        model = PeftModel.from_pretrained(load_base(tiny_assets["base"]), tmp_path / "r", is_trainable=True)
        model.train()
        if checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": use_reentrant})
        calls = []
        layer = model.base_model.model.model.layers[0].self_attn.q_proj
        handle = layer.register_forward_hook(lambda *args, calls=calls: calls.append(1))
        model(**inputs, labels=labels, use_cache=False).loss.backward()
        handle.remove()
        probe = source.startswith("layer:")  # block 0 also runs in the base-only pass that feeds the router
        assert len(calls) == (2 if checkpointing else 1) + probe  # checkpointing really recomputed the layer
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    plain, checkpointed = grads
    assert plain.keys() == checkpointed.keys() and plain
    assert plain.keys() == {n for n, _ in model.named_parameters() if "skill_router_" in n}  # every router param
    assert all(plain[n].abs().sum() > 0 for n in plain)
    for name in plain:
        torch.testing.assert_close(checkpointed[name], plain[name], rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("router", ROUTERS)
def test_trainer_train_and_resume(tiny_assets, tmp_path, router):
    """Stock Trainer: trains the router, checkpoints it, and a resumed run ends where an uninterrupted one does."""
    from datasets import Dataset
    from transformers import Trainer, TrainerCallback, TrainingArguments

    torch.manual_seed(0)
    rows = [{"input_ids": torch.randint(3, VOCAB, (10,)).tolist()} for _ in range(16)]
    data = Dataset.from_list([{**r, "labels": [-100] * 4 + r["input_ids"][4:]} for r in rows])

    class StopAt(TrainerCallback):  # simulates a crash right after the step-2 checkpoint
        def __init__(self, step):
            self.step = step

        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == self.step:
                control.should_training_stop = True

    def run(out, stop_at=None, resume=None):
        model = make_router(tiny_assets, router=router)
        args = TrainingArguments(
            output_dir=str(out), max_steps=4, per_device_train_batch_size=4, learning_rate=5e-2, save_steps=2,
            logging_steps=1, report_to=[], use_cpu=True, seed=0, data_seed=0, disable_tqdm=True,
        )  # fmt: skip
        callbacks = [StopAt(stop_at)] if stop_at else []
        trainer = Trainer(model=model, args=args, train_dataset=data, callbacks=callbacks)
        trainer.train(resume_from_checkpoint=resume)
        return trainer, router_state(model)

    trainer, straight = run(tmp_path / "a")
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert len(losses) == 4
    assert {"adapter_config.json", "adapter_model.safetensors"} <= set(os.listdir(tmp_path / "a" / "checkpoint-2"))
    _, first_half = run(tmp_path / "b", stop_at=2)
    assert any(not torch.equal(first_half[k], straight[k]) for k in straight)
    _, resumed = run(tmp_path / "b", resume=str(tmp_path / "b" / "checkpoint-2"))
    for k in straight:
        torch.testing.assert_close(resumed[k], straight[k])


# ---------------------------------------------------------------------------------------------------------------
# Inference behaviour


@pytest.mark.parametrize("kwargs", CASES, ids=IDS)
def test_generate_kv_cache_parity(tiny_assets, kwargs):
    model = make_router(tiny_assets, **kwargs)
    torch.manual_seed(5)
    prompt = torch.randint(3, VOCAB, (2, 6))
    mask = torch.ones_like(prompt)
    mask[1, :2] = 0  # left padding in the second row
    gen = dict(
        attention_mask=mask, max_new_tokens=8, do_sample=False, pad_token_id=0, output_scores=True,
        return_dict_in_generate=True,
    )  # fmt: skip
    with torch.no_grad():
        cached = model.generate(input_ids=prompt, use_cache=True, **gen)
        uncached = model.generate(input_ids=prompt, use_cache=False, **gen)
        with model.disable_adapter():
            base = model.generate(input_ids=prompt, use_cache=True, **gen)
    assert torch.equal(cached.sequences, uncached.sequences)
    torch.testing.assert_close(torch.stack(cached.scores), torch.stack(uncached.scores), rtol=1e-4, atol=1e-5)
    assert not torch.allclose(torch.stack(cached.scores), torch.stack(base.scores), atol=1e-3)  # skills are in play
    assert not model.training  # generate leaves the mode alone


@pytest.mark.parametrize("router,task_rank", [("static", 0), ("sequence", 0), ("static", 2), ("sequence", 2)])
def test_reused_gates_follow_every_change(tiny_assets, inputs, router, task_rank):
    """Fixed gates are folded into B once in eval mode (with the hybrid's task LoRA appended to A and B); every change
    that moves them must still reach the output."""
    model = make_router(tiny_assets, router=router, task_rank=task_rank)
    layer = model.base_model.model.model.layers[0].self_attn.q_proj
    row = {k: v[:1] for k, v in inputs.items()}  # batch 1: one set of gates, folded into B
    first = logits(model, row)
    _, slot_w, A, B, task_folded = layer._fixed_mixing["default"][1]
    assert slot_w is None and task_folded == bool(task_rank)  # folded
    assert A.shape[0] == B.shape[1] == layer.skills_A["default"].shape[0] + task_rank
    with torch.enable_grad():
        fresh = model(**row).logits.detach()  # with autograd: computed from scratch, nothing reused
    torch.testing.assert_close(first, fresh, rtol=1e-5, atol=1e-5)
    assert torch.equal(logits(model, row), first)
    with torch.no_grad():  # an in-place update, as an optimizer step makes
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.5 * torch.randn_like(p))
    moved = logits(model, row)
    assert not torch.allclose(moved, first)
    with torch.enable_grad():
        torch.testing.assert_close(moved, model(**row).logits.detach(), rtol=1e-5, atol=1e-5)
    with model.base_model.force_skill_weights({"alpha": 1.0}):
        forced = logits(model, row)
        assert not torch.allclose(forced, moved)
    assert torch.equal(logits(model, row), moved)
    if router == "sequence":  # another prompt, other gates
        other = {k: v[1:2] for k, v in inputs.items()}
        with torch.enable_grad():
            expected = model(**other).logits.detach()
        torch.testing.assert_close(logits(model, other), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("router,task_rank", [("static", 0), ("sequence", 0), ("sequence", 2)])
def test_unused_skills_leave_the_reused_matmuls(tiny_assets, inputs, router, task_rank):
    """With top_k (or forced weights) some gates are exactly 0: their rank slots are dropped from the reused A and B
    (so 48 skills under top_k cost what the chosen ones cost), and the output equals the full computation."""
    model = make_router(tiny_assets, router=router, top_k=1, task_rank=task_rank)
    layer = model.base_model.model.model.layers[0].self_attn.q_proj
    slots = layer.skill_slots["default"]
    for batch in ({k: v[:1] for k, v in inputs.items()}, inputs):  # folded (one set of gates), then per row
        out = logits(model, batch)
        weights, slot_w, A, B, _ = layer._fixed_mixing["default"][1]
        used = weights.reshape(-1, weights.shape[-1]).ne(0).any(0)
        assert 0 < int(used.sum()) < len(used)  # top_k=1 leaves skills out
        assert A.shape[0] == B.shape[1] == int(used[slots].sum()) + task_rank  # the task LoRA joins either way
        assert slot_w is None or slot_w.shape[-1] == A.shape[0]
        with torch.enable_grad():  # computed from scratch over every slot
            torch.testing.assert_close(out, model(**batch).logits.detach(), rtol=1e-5, atol=1e-5)
    with model.base_model.force_skill_weights({"beta": 1.0}):
        forced = logits(model, inputs)
        _, _, A, _, _ = layer._fixed_mixing["default"][1]
        assert A.shape[0] == int((slots == layer.skill_names["default"].index("beta")).sum()) + task_rank
        with torch.enable_grad():
            torch.testing.assert_close(forced, model(**inputs).logits.detach(), rtol=1e-5, atol=1e-5)


def test_sequence_router_reads_a_middle_block(tiny_assets, inputs):
    """`sequence_input='layer:N'` routes on the hidden state entering block N of the base model without the skills
    (one partial pass per prompt), pooled like the embeddings; it refuses a block the model does not have."""
    model = make_router(tiny_assets, router="sequence", sequence_input="layer:1")
    base = load_base(tiny_assets["base"]).eval()
    entering = {}
    handle = base.model.layers[1].register_forward_pre_hook(lambda m, args: entering.setdefault("h", args[0]))
    with torch.no_grad():
        base(**inputs)
        model(**inputs)
    handle.remove()
    state = next(iter(model.base_model._routing_states.values()))
    expected = state._pool(entering["h"], inputs["attention_mask"], None)
    torch.testing.assert_close(state.pooled, expected)
    embedded = make_router(tiny_assets, router="sequence")
    with torch.no_grad():
        embedded(**inputs)
    assert not torch.allclose(next(iter(embedded.base_model._routing_states.values())).pooled, state.pooled)
    with pytest.raises(ValueError, match="the model has 2 blocks in 'model.layers'; choose N in \\[0, 1\\]"):
        make_router(tiny_assets, router="sequence", sequence_input="layer:2")
    with pytest.raises(ValueError, match="sequence_input='layer:x'; choose from"):
        SkillRouterConfig(skills=dict(tiny_assets["skills"]), sequence_input="layer:x")


@pytest.mark.parametrize("router", ROUTERS)
def test_routing_prior_is_the_starting_mixture(tiny_assets, inputs, router):
    """`set_routing_prior` makes every layer start at the given weights (an untrained router's input-dependent part is
    zero); unknown skills or negative weights are refused."""
    config = SkillRouterConfig(skills=dict(tiny_assets["skills"]), task_type="CAUSAL_LM", router=router)
    model = get_peft_model(load_base(tiny_assets["base"]), config).eval()
    names = config.skill_names
    model.base_model.set_routing_prior({names[0]: 6.0, names[1]: 3.0, names[2]: 1.0})
    logits(model, inputs)
    for gates in model.base_model.get_routing_weights().values():
        expected = torch.tensor([0.6, 0.3, 0.1]).expand_as(gates)
        torch.testing.assert_close(gates.float(), expected, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="non-negative weights over"):
        model.base_model.set_routing_prior({"ghost": 1.0})


def test_sequence_router_keeps_prompt_gates_through_decoding(tiny_assets):
    model = make_router(tiny_assets, router="sequence")
    prompt = torch.randint(3, VOCAB, (1, 6))
    with torch.no_grad():
        model(input_ids=prompt)
        prompt_gates = model.base_model.get_routing_weights()
        model.generate(input_ids=prompt, max_new_tokens=4, do_sample=False, pad_token_id=0)
        after = model.base_model.get_routing_weights()
    for key in prompt_gates:
        assert torch.equal(prompt_gates[key], after[key])


def test_sequence_router_refuses_a_foreign_kv_cache(tiny_assets):
    model = make_router(tiny_assets, router="sequence")
    prompt = torch.randint(3, VOCAB, (1, 6))
    with torch.no_grad():
        cache = load_base(tiny_assets["base"])(input_ids=prompt, use_cache=True).past_key_values
        with pytest.raises(ValueError, match="KV cache was not produced by this model"):
            model(input_ids=prompt[:, -1:], past_key_values=cache)


def test_sequence_router_warns_when_labels_leave_no_prompt(tiny_assets, inputs):
    model = make_router(tiny_assets, router="sequence").train()
    with pytest.warns(UserWarning, match="router sees no prompt"):
        model(**inputs, labels=inputs["input_ids"])
    labels = inputs["input_ids"].clone()
    labels[:, :2] = -100
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        model(**inputs, labels=labels).loss.backward()
    gate_weights = [p for n, p in model.named_parameters() if "skill_router_" in n and n.endswith("proj.weight")]
    assert gate_weights and all(p.grad is not None and p.grad.abs().sum() > 0 for p in gate_weights)


def test_sequence_router_ignores_supervised_tokens(tiny_assets):
    model = make_router(tiny_assets, router="sequence")
    a = torch.randint(3, VOCAB, (1, 10))
    b = a.clone()
    b[0, 6:] = torch.randint(3, VOCAB, (4,))  # different answer, same prompt
    labels_a, labels_b = a.clone(), b.clone()
    labels_a[0, :6] = labels_b[0, :6] = -100
    with torch.no_grad():
        model(input_ids=a, labels=labels_a)
        gates_a = model.base_model.get_routing_weights()
        model(input_ids=b, labels=labels_b)
        gates_b = model.base_model.get_routing_weights()
        model(input_ids=b)  # without labels the whole input is the prompt
        gates_c = model.base_model.get_routing_weights()
    key = next(iter(gates_a))
    assert torch.equal(gates_a[key], gates_b[key])
    assert not torch.equal(gates_a[key], gates_c[key])


@pytest.mark.parametrize("router,shape", [("sequence", (2, 1, 3)), ("token", (2, 7, 3)), ("static", (3,))])
def test_routing_weights_are_readable(tiny_assets, inputs, router, shape):
    model = make_router(tiny_assets, router=router)
    logits(model, inputs)
    weights = model.base_model.get_routing_weights()
    assert len(weights) == 4  # q_proj and v_proj in 2 layers
    for w in weights.values():
        assert tuple(w.shape) == shape
        torch.testing.assert_close(w.sum(-1), torch.ones(shape[:-1]))
    summary = model.base_model.routing_summary()
    assert set(summary) == set(tiny_assets["skills"]) and abs(sum(summary.values()) - 1) < 1e-5


@pytest.mark.parametrize("router", ROUTERS)
def test_zero_init_is_uniform_average(tiny_assets, inputs, router):
    config = SkillRouterConfig(skills=dict(tiny_assets["skills"]), task_type="CAUSAL_LM", router=router)
    model = get_peft_model(load_base(tiny_assets["base"]), config).eval()
    uniform = logits(model, inputs)
    for w in model.base_model.get_routing_weights().values():
        assert torch.equal(w, torch.full_like(w, 1 / 3))
    with model.base_model.force_skill_weights({n: 1 / 3 for n in tiny_assets["skills"]}):
        forced = logits(model, inputs)
    torch.testing.assert_close(uniform, forced)


@pytest.mark.parametrize("router,varies_over", [("sequence", "batch"), ("token", "tokens"), ("static", None)])
def test_gates_depend_on_what_the_router_sees(tiny_assets, inputs, router, varies_over):
    model = make_router(tiny_assets, router=router)
    logits(model, inputs)
    first = next(iter(model.base_model.get_routing_weights().values()))
    if varies_over == "batch":  # one vector per sequence and layer, from the prompt
        assert not torch.equal(first[0], first[1])
    elif varies_over == "tokens":  # one vector per token
        assert not torch.equal(first[0, 0], first[0, 1])
    other = {"input_ids": inputs["input_ids"].flip(1)[:, :5], "attention_mask": inputs["attention_mask"][:, :5]}
    logits(model, other)
    second = next(iter(model.base_model.get_routing_weights().values()))
    assert torch.equal(first, second) == (varies_over is None)  # only the static router ignores its input


@pytest.mark.parametrize("skill", ["alpha", "beta", "gamma"])
def test_forced_single_skill_equals_skill_alone(tiny_assets, inputs, skill):
    model = make_router(tiny_assets, router="token")
    alone = PeftModel.from_pretrained(load_base(tiny_assets["base"]), tiny_assets["skills"][skill]).eval()
    routed = logits(model, inputs)
    with model.base_model.force_skill_weights({skill: 1.0}):
        mixed = logits(model, inputs)
    torch.testing.assert_close(mixed, logits(alone, inputs), rtol=1e-5, atol=1e-5)
    assert torch.equal(logits(model, inputs), routed)  # leaving the context restores the router
    with model.base_model.force_skill_weights({}):  # all zero: the base model
        torch.testing.assert_close(logits(model, inputs), logits(load_base(tiny_assets["base"]), inputs))


@pytest.mark.parametrize("kwargs", CASES, ids=IDS)
def test_disable_adapter_is_base_model(tiny_assets, inputs, kwargs):
    model = make_router(tiny_assets, **kwargs)
    model.train()
    adapted = logits(model, inputs)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    with model.disable_adapter():
        disabled = logits(model, inputs)
    assert torch.equal(disabled, logits(load_base(tiny_assets["base"]).train(), inputs))
    assert not torch.equal(disabled, adapted)
    assert torch.equal(logits(model, inputs), adapted)
    assert {n for n, p in model.named_parameters() if p.requires_grad} == trainable
    assert model.training


def test_delete_adapter_and_unload(tiny_assets, inputs):
    base_logits = logits(load_base(tiny_assets["base"]), inputs)
    model = make_router(tiny_assets, router="sequence")
    model.add_adapter("other", SkillRouterConfig(skills=dict(tiny_assets["skills"]), router="token"))
    randomize_router(model, seed=3)
    model.set_adapter("other")
    other_logits = logits(model, inputs)
    model.delete_adapter("default")
    assert model.active_adapters == ["other"]
    assert all(".default." not in n for n, _ in model.named_parameters())
    assert all(".default" not in n for n, _ in model.named_buffers())
    assert not model.base_model.model._forward_pre_hooks  # the sequence router's pooling hook went with it
    assert torch.equal(logits(model, inputs), other_logits)
    unloaded = model.unload()
    assert not any(isinstance(m, SkillRouterLayer) for m in unloaded.modules())
    assert torch.equal(logits(unloaded, inputs), base_logits)


def test_two_routers_switch(tiny_assets, inputs):
    model = make_router(tiny_assets, router="sequence")
    first = logits(model, inputs)
    model.add_adapter("second", SkillRouterConfig(skills=dict(tiny_assets["skills"]), router="token"))
    randomize_router(model, seed=99)
    model.set_adapter("second")
    second = logits(model, inputs)
    assert not torch.equal(first, second)


def test_merge_and_unload_static(tiny_assets, inputs):
    model = make_router(tiny_assets, router="static")
    expected = logits(model, inputs)
    merged = model.merge_and_unload()
    assert not any(isinstance(m, SkillRouterLayer) for m in merged.modules())
    torch.testing.assert_close(logits(merged, inputs), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("safe_merge", [False, True])
def test_merge_unmerge_static_roundtrip(tiny_assets, inputs, safe_merge):
    model = make_router(tiny_assets, router="static")
    layer = model.base_model.model.model.layers[1].self_attn.v_proj
    w0 = layer.get_base_layer().weight.detach().clone()
    expected = logits(model, inputs)
    model.merge_adapter(safe_merge=safe_merge)
    assert layer.merged and not torch.equal(layer.get_base_layer().weight, w0)
    torch.testing.assert_close(logits(model, inputs), expected, rtol=1e-5, atol=1e-5)
    model.unmerge_adapter()
    torch.testing.assert_close(layer.get_base_layer().weight, w0, rtol=0, atol=1e-6)
    torch.testing.assert_close(logits(model, inputs), expected, rtol=1e-5, atol=1e-5)
    # Merged inside forced weights, unmerged after leaving them: unmerge subtracts what was merged.
    with model.base_model.force_skill_weights({"alpha": 1.0}):
        model.merge_adapter()
    model.unmerge_adapter()
    torch.testing.assert_close(layer.get_base_layer().weight, w0, rtol=0, atol=1e-6)


@pytest.mark.parametrize("router", ["sequence", "token"])
def test_merge_refused_for_input_dependent_routers(tiny_assets, router):
    model = make_router(tiny_assets, router=router)
    with pytest.raises(ValueError, match="router='static'"):
        model.merge_and_unload()
    with pytest.raises(ValueError, match="static"):
        model.merge_adapter()
    assert not any(m.merged for m in model.modules() if isinstance(m, SkillRouterLayer))


def test_merge_inside_forced_weights(tiny_assets, inputs):
    model = make_router(tiny_assets, router="token")
    with model.base_model.force_skill_weights({"alpha": 0.25, "gamma": 0.75}):
        expected = logits(model, inputs)
        merged = model.merge_and_unload()
    torch.testing.assert_close(logits(merged, inputs), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("autocast", [True, False])
def test_bf16_model_dtypes(tiny_assets, inputs, autocast):
    """Like peft's LoRA: float32 factors and router by default (exact cached decoding), bf16 on request (faster): then
    no trainable parameter is float32, and the gates still come out of a float32 softmax."""
    config = SkillRouterConfig(skills=dict(tiny_assets["skills"]), task_type="CAUSAL_LM", router="token")
    base = load_base(tiny_assets["base"]).to(torch.bfloat16)
    model = get_peft_model(base, config, autocast_adapter_dtype=autocast).eval()
    layer = model.base_model.model.model.layers[0].self_attn.q_proj
    assert layer.skills_A["default"].dtype == (torch.float32 if autocast else torch.bfloat16)
    wanted = torch.float32 if autocast else torch.bfloat16
    assert {p.dtype for p in model.parameters() if p.requires_grad} == {wanted}
    assert logits(model, inputs).dtype == torch.bfloat16
    assert all(g.dtype == torch.float32 for g in model.base_model.get_routing_weights().values())


def test_router_model_card(tiny_assets, tmp_path):
    from huggingface_hub import ModelCard

    model = make_router(tiny_assets, router="token")
    model.save_pretrained(tmp_path / "r")
    card = ModelCard.load(tmp_path / "r" / "README.md")
    assert {"skill-router", "samdkif"} <= set(card.data.tags) and card.data.library_name == "peft"
    assert "Model Card for Model ID" not in card.text  # peft's boilerplate replaced
    for name in tiny_assets["skills"]:
        assert f"| {name} |" in card.text
    n_params = sum(p.numel() for n, p in model.named_parameters() if "skill_router_" in n)
    assert f"({n_params} parameters)" in card.text
    # A card the user edited keeps their text; only our skills section is refreshed.
    card.text = "My notes.\n\n" + card.text[card.text.index("<!-- samdkif:skills -->") :]
    card.save(tmp_path / "r" / "README.md")
    model.save_pretrained(tmp_path / "r")
    text = ModelCard.load(tmp_path / "r" / "README.md").text
    assert text.startswith("My notes.") and text.count("## Skills") == 1


@pytest.mark.parametrize("router", ROUTERS)
def test_exactly_one_base_forward_per_step(tiny_assets, inputs, router):
    """X-LoRA runs the decoder twice per step (a scaling pass, then the real one); we run it once."""
    model = make_router(tiny_assets, router=router)
    calls = []
    decoder = model.base_model.model.model
    handle = decoder.register_forward_hook(lambda *args: calls.append(1))
    model.train()
    model(**inputs, labels=inputs["input_ids"]).loss.backward()
    assert len(calls) == 1
    calls.clear()
    model.eval()
    with torch.no_grad():
        model.generate(**inputs, max_new_tokens=5, min_new_tokens=5, do_sample=False, pad_token_id=0)
    assert len(calls) == 5  # one pass per generated token, with the KV cache on
    handle.remove()


@pytest.mark.parametrize("router", ROUTERS)
def test_deepcopy_routes_independently(tiny_assets, inputs, router):
    import copy

    model = make_router(tiny_assets, router=router)
    clone = copy.deepcopy(model)
    assert torch.equal(logits(clone, inputs), logits(model, inputs))
    randomize_router(clone, seed=11)
    assert not torch.equal(logits(clone, inputs), logits(model, inputs))
    before = model.base_model.get_routing_weights()
    other = {"input_ids": inputs["input_ids"][:1, :3], "attention_mask": inputs["attention_mask"][:1, :3]}
    logits(clone, other)  # the clone's forward must not touch the original's routing state
    after = model.base_model.get_routing_weights()
    assert all(torch.equal(before[k], after[k]) for k in before)
