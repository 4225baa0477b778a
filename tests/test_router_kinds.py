"""The router-kind registry: each kind is one registered class, and a new one works end to end from that alone."""

from __future__ import annotations

import json

import pytest
import torch
from peft import PeftModel, get_peft_model

import samdkif_peft  # noqa: F401  (registers SKILL_ROUTER)
from samdkif_peft import SkillRouterConfig
from samdkif_peft.tuner.router import ROUTERS, Router, get_router, register_router

from .conftest import VOCAB, load_base, randomize_router


@pytest.fixture
def blend_kind():
    """A router kind declared in this one place: gates from the layer's token input plus the pooled prompt."""

    @register_router
    class BlendRouter(Router):
        """Token gates shifted by the prompt's: per token, yet anchored to what the task asks."""

        kind = "blend"
        description = "gates per token from each layer's input, shifted by the pooled prompt"
        needs_prompt = True

        def __init__(self, in_features: int, n_choices: int, prompt_features: int | None = None):
            super().__init__(in_features, n_choices, prompt_features)
            self.token = torch.nn.Linear(in_features, n_choices)
            self.prompt = torch.nn.Linear(prompt_features, n_choices, bias=False)

        def forward(self, x: torch.Tensor, pooled: torch.Tensor | None) -> torch.Tensor:
            shift = self.prompt(pooled.to(self.prompt.weight.dtype))  # (B, S)
            return self.token(x.to(self.token.weight.dtype)) + (shift if x.dim() == 2 else shift.unsqueeze(1))

    yield BlendRouter.kind
    del ROUTERS[BlendRouter.kind]


def test_get_router_lists_the_registered_kinds():
    assert get_router("static").mergeable and get_router("sequence").needs_prompt
    assert not get_router("token").mergeable and not get_router("token").needs_prompt
    # only kinds that declare it get their gates reused across decoded tokens; a new kind is safe by default
    assert get_router("static").ignores_layer_input and get_router("sequence").ignores_layer_input
    assert not get_router("token").ignores_layer_input and not Router.ignores_layer_input
    with pytest.raises(ValueError, match="Unsupported router 'moe'; .*'sequence', 'token', 'static'"):
        get_router("moe")
    with pytest.raises(ValueError, match="already registered"):

        @register_router
        class Impostor(Router):
            kind = "static"


def test_a_new_router_kind_works_end_to_end(blend_kind, tiny_assets, tmp_path, inputs):
    config = SkillRouterConfig(skills=dict(tiny_assets["skills"]), router=blend_kind, task_type="CAUSAL_LM")
    model = get_peft_model(load_base(tiny_assets["base"]), config)
    randomize_router(model)
    # one training step moves the new gate, and only router parameters
    model.train()
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    labels = inputs["input_ids"].clone()
    labels[:, :3] = -100  # a prompt to pool
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model(**inputs, labels=labels).loss.backward()
    optimizer.step()
    changed = {k for k, v in model.state_dict().items() if not torch.equal(before[k], v)}
    assert {k.rsplit(".", 2)[-2] for k in changed if ".skill_router_gate." in k} == {"prompt", "token"}
    assert all("skill_router_" in k for k in changed)

    model.eval()
    with torch.no_grad():
        expected = model(**inputs).logits
    model.save_pretrained(tmp_path / "r")
    saved = json.loads((tmp_path / "r" / "adapter_config.json").read_text())
    assert saved["router"] == blend_kind
    assert get_router(blend_kind).description in (tmp_path / "r" / "README.md").read_text()

    loaded = PeftModel.from_pretrained(load_base(tiny_assets["base"]), tmp_path / "r").eval()
    with torch.no_grad():
        assert torch.equal(loaded(**inputs).logits, expected)
        # a prompt router keeps the prompt's gates through cached decoding: cached and uncached generation agree
        prompt = torch.randint(3, VOCAB, (2, 6))
        gen = dict(max_new_tokens=6, do_sample=False, pad_token_id=0)
        assert torch.equal(loaded.generate(input_ids=prompt, use_cache=True, **gen),
                           loaded.generate(input_ids=prompt, use_cache=False, **gen))  # fmt: skip
    with pytest.raises(ValueError, match="router='static'"):  # input-dependent: not mergeable
        loaded.merge_and_unload()


def test_cli_offers_every_registered_kind(blend_kind):
    from samdkif_cli import build_parser

    train = ["train", "router", "nli", "--skills", "a=b", "--out", "o", "--router", blend_kind]
    assert build_parser("train").parse_args(train).router == blend_kind
    own_task = ["router", "train", "--train", "t", "--test", "t", "--out", "o", "--router", blend_kind]
    assert build_parser("router").parse_args(own_task).router == blend_kind
