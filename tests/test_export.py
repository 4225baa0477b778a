"""`export_lora` / `samdkif router export`: a router as one plain peft LoRA that computes what the router computes."""

from __future__ import annotations

import json

import pytest
import torch
from peft import PeftModel, get_peft_model

import samdkif_peft  # noqa: F401  (registers SKILL_ROUTER)
from samdkif_peft import SkillRouterConfig
from samdkif_peft.tuner.export import export_lora

from .conftest import load_base, randomize_router


def _router(tiny_assets, **kwargs):
    config = SkillRouterConfig(skills=dict(tiny_assets["skills"]), task_type="CAUSAL_LM", **kwargs)
    model = get_peft_model(load_base(tiny_assets["base"]), config)
    randomize_router(model)
    return model.eval()


@pytest.mark.parametrize("kwargs", [{"router": "static"}, {"router": "static", "task_rank": 3, "null_expert": True}])
def test_static_router_exports_to_an_equal_plain_lora(tiny_assets, tmp_path, inputs, kwargs):
    model = _router(tiny_assets, **kwargs)
    with torch.no_grad():
        expected = model(**inputs).logits
    summary = export_lora(model, tmp_path / "lora")
    assert not summary["approximate"]
    config = json.loads((tmp_path / "lora" / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA"  # nothing of this plugin is needed to load it
    lora = PeftModel.from_pretrained(load_base(tiny_assets["base"]), tmp_path / "lora").eval()
    with torch.no_grad():
        got = lora(**inputs).logits
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    with torch.no_grad(), model.disable_adapter():
        assert not torch.allclose(model(**inputs).logits, expected, atol=1e-4)  # the skills do change the output


def test_input_dependent_router_needs_prompts_and_exports_its_average(tiny_assets, tmp_path, inputs):
    from .conftest import char_tokenizer

    model = _router(tiny_assets, router="sequence")
    with pytest.raises(ValueError, match="pass prompts="):
        export_lora(model, tmp_path / "x")
    tokenizer = char_tokenizer()
    prompts = ["abcdef", "heartlung", "renalfailure"]  # the tiny base knows 96 ids: no spaces
    summary = export_lora(model, tmp_path / "avg", prompts=prompts, tokenizer=tokenizer)
    assert summary["approximate"]
    # the exported LoRA equals the router with every module's gates forced to the recorded averages
    lora = PeftModel.from_pretrained(load_base(tiny_assets["base"]), tmp_path / "avg").eval()
    gates = next(iter(summary["gates"].values()))
    assert abs(sum(gates) - 1) < 1e-4
    static = _router(tiny_assets, router="static")
    for name, module in static.named_modules():
        key = name.removeprefix("base_model.model.")
        if key in summary["gates"]:
            module.skill_router_gate["default"].logits.data = torch.tensor(summary["gates"][key]).log()
    with torch.no_grad():
        torch.testing.assert_close(lora(**inputs).logits, static(**inputs).logits, rtol=1e-4, atol=1e-4)


def test_cli_export(tiny_assets, tmp_path, inputs, capsys):
    from samdkif_peft.cli import main

    model = _router(tiny_assets, router="static")
    model.save_pretrained(tmp_path / "router")
    with torch.no_grad():
        expected = model(**inputs).logits
    argv = ["router", "export", str(tmp_path / "router"), "--out", str(tmp_path / "lora"), "--base-model",
            tiny_assets["base"]]  # fmt: skip
    assert main(argv) == 0
    assert "exact; load it with plain peft" in capsys.readouterr().out
    assert main([*argv[:4], str(tmp_path / "small"), *argv[5:], "--min-weight", "0.99"]) == 0
    assert "skills below 0.99 left out" in capsys.readouterr().out
    summary = json.loads((tmp_path / "small" / "samdkif_export.json").read_text())
    assert all(summary["rank"][k] < r for k, r in json.loads((tmp_path / "lora" / "samdkif_export.json").read_text())
               ["rank"].items())  # fmt: skip
    lora = PeftModel.from_pretrained(load_base(tiny_assets["base"]), tmp_path / "lora").eval()
    with torch.no_grad():
        torch.testing.assert_close(lora(**inputs).logits, expected, rtol=1e-5, atol=1e-5)
    sequence = _router(tiny_assets, router="sequence")
    sequence.save_pretrained(tmp_path / "seq")
    assert main(["router", "export", str(tmp_path / "seq"), "--out", str(tmp_path / "x"), "--base-model",
                 tiny_assets["base"]]) == 1  # fmt: skip
    assert "pass prompts=" in capsys.readouterr().err
