"""`samdkif router info [--verify]` on local and Hub routers: settings, pins, and tampered or missing skills."""

from __future__ import annotations

import json
import shutil

import pytest
from huggingface_hub import HfApi
from peft import PeftModel, get_peft_model

from samdkif_peft import SkillRouterConfig
from samdkif_peft.cli import main

from .conftest import load_base, make_lora_skill


def _router(assets, skills: dict[str, str], out, **kwargs) -> str:
    config = SkillRouterConfig(skills=skills, task_type="CAUSAL_LM", **kwargs)
    get_peft_model(load_base(assets["base"]), config).save_pretrained(out)
    return str(out)


def _info(capsys, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    status = main(["router", "info", *argv])
    out, err = capsys.readouterr()
    return status, out, err


def test_info_shows_settings_and_pins(tiny_assets, tmp_path, capsys):
    router = _router(tiny_assets, tiny_assets["skills"], tmp_path / "router", router="token", top_k=2)
    status, out, _ = _info(capsys, router, "--json")
    summary = json.loads(out)
    assert status == 0
    assert summary["router"] == "token" and summary["top_k"] == 2
    assert summary["gate_scope"] == "module"  # a token router's default: it reads each layer's input
    assert summary["target_modules"] == ["q_proj", "v_proj"]
    assert set(summary["skills"]) == {"alpha", "beta", "gamma"}
    assert summary["skills"]["gamma"]["peft_type"] == "ADALORA"
    assert all(len(s["sha256"]) == 64 for s in summary["skills"].values())

    status, out, _ = _info(capsys, router, "--verify")
    assert status == 0
    assert [line.split()[-1] for line in out.splitlines()[3:]] == ["ok", "ok", "ok"]


def test_verify_names_a_changed_skill(tiny_assets, tmp_path, capsys):
    skills = {name: shutil.copytree(path, tmp_path / name) for name, path in tiny_assets["skills"].items()}
    router = _router(tiny_assets, {k: str(v) for k, v in skills.items()}, tmp_path / "router")
    make_lora_skill(tiny_assets["base"], str(skills["beta"]), seed=42)  # retrained in place after the router

    status, out, _ = _info(capsys, router, "--verify")
    assert status == 1
    lines = {line.split()[0]: line for line in out.splitlines()[3:]}
    assert lines["alpha"].endswith("ok") and lines["gamma"].endswith("ok")
    assert "FAILED: Skill 'beta' changed since this router was trained" in lines["beta"]

    shutil.rmtree(skills["gamma"])
    status, out, _ = _info(capsys, router, "--verify", "--json")
    gamma = json.loads(out)["skills"]["gamma"]
    assert status == 1 and gamma["verified"] is False and "gamma" in gamma["error"]


def test_info_rejects_what_is_not_a_router(tiny_assets, tmp_path, capsys):
    status, _, err = _info(capsys, tiny_assets["skills"]["alpha"])
    assert status == 1 and "is a LORA adapter, not a skill router" in err
    status, _, err = _info(capsys, str(tmp_path / "missing"))
    assert status == 1 and "samdkif router info: error:" in err and "missing" in err


def test_info_verifies_a_hub_router(hub_server, hub_repo_id, tiny_assets, capsys):
    skills = {}
    for name, path in tiny_assets["skills"].items():
        PeftModel.from_pretrained(load_base(tiny_assets["base"]), path).push_to_hub(f"{hub_repo_id}-{name}")
        skills[name] = f"{hub_repo_id}-{name}"
    config = SkillRouterConfig(skills=skills, task_type="CAUSAL_LM")
    get_peft_model(load_base(tiny_assets["base"]), config).push_to_hub(f"{hub_repo_id}-router")
    pinned = HfApi().model_info(skills["alpha"]).sha

    status, out, _ = _info(capsys, f"{hub_repo_id}-router", "--verify", "--json")
    summary = json.loads(out)
    assert status == 0, summary
    assert summary["skills"]["alpha"]["revision"] == pinned
    assert all(s["verified"] for s in summary["skills"].values())


@pytest.mark.parametrize("argv", [["router"], ["router", "info"]])
def test_info_usage_errors(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
