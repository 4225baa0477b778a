"""A user's mistakes get one clear error, never a deep traceback or a silent wrong artifact (issue: reliability)."""

from __future__ import annotations

import shutil

import pytest
import torch
from peft import PeftModel, get_peft_model

import samdkif_peft  # noqa: F401  (registers SKILL_ROUTER)
from samdkif_peft import SkillRouterConfig

from .conftest import load_base


def _quickstart_layout(tiny_assets, root):
    """Skills and router saved the quickstart's way: relative paths such as `runs/quickstart/skill-copy`."""
    for name in ("alpha", "beta"):
        shutil.copytree(tiny_assets["skills"][name], root / "runs" / "quickstart" / f"skill-{name}")
    config = SkillRouterConfig(
        skills={n: f"runs/quickstart/skill-{n}" for n in ("alpha", "beta")}, task_type="CAUSAL_LM"
    )
    model = get_peft_model(load_base(tiny_assets["base"]), config)
    model.save_pretrained("runs/quickstart/router")
    return model


def test_relative_skill_paths_load_from_any_directory_and_never_go_to_the_hub(tiny_assets, tmp_path, monkeypatch):
    project = tmp_path / "project"
    monkeypatch.chdir(project.mkdir() or project)
    model = _quickstart_layout(tiny_assets, project)
    x = torch.randint(3, 90, (1, 6))
    expected = model(input_ids=x).logits
    saved = model.peft_config["default"]
    assert saved.skills["alpha"] == "runs/quickstart/skill-alpha"  # the live config keeps what the user wrote
    monkeypatch.chdir(tmp_path)  # somewhere else entirely
    router = project / "runs" / "quickstart" / "router"
    loaded = PeftModel.from_pretrained(load_base(tiny_assets["base"]), str(router))
    assert loaded.peft_config["default"].skills["alpha"] == "../skill-alpha"  # stored relative to the router
    assert torch.equal(loaded(input_ids=x).logits, expected)
    # router and skills moved together: still loads (relative to the router folder)
    shutil.move(project / "runs", tmp_path / "elsewhere")
    moved = tmp_path / "elsewhere" / "quickstart" / "router"
    assert torch.equal(PeftModel.from_pretrained(load_base(tiny_assets["base"]), str(moved))(input_ids=x).logits,
                       expected)  # fmt: skip
    # the skills gone: a clear local error naming the skill and where it looked, not a Hub request for `runs/...`
    shutil.rmtree(tmp_path / "elsewhere" / "quickstart" / "skill-alpha")
    with pytest.raises(FileNotFoundError, match=r"Skill 'alpha' was a local folder when this router was saved"):
        PeftModel.from_pretrained(load_base(tiny_assets["base"]), str(moved))


def test_push_to_hub_refuses_local_skills_and_bundling_fixes_it(tiny_assets, tmp_path, monkeypatch, hub_repo_id):
    monkeypatch.chdir(tmp_path)
    model = _quickstart_layout(tiny_assets, tmp_path)
    with pytest.raises(ValueError, match=r"local skill folder\(s\).*Push the skills first.*bundle_skills=True"):
        model.push_to_hub(hub_repo_id)
    config = SkillRouterConfig(skills=dict(tiny_assets["skills"]), task_type="CAUSAL_LM", bundle_skills=True)
    bundled = get_peft_model(load_base(tiny_assets["base"]), config)
    bundled.push_to_hub(hub_repo_id)
    from huggingface_hub import HfApi

    files = HfApi().list_repo_files(hub_repo_id)
    assert {f"skill_{n}/adapter_model.safetensors" for n in tiny_assets["skills"]} <= set(files)
    # plain peft adapters are untouched by the guard
    lora = PeftModel.from_pretrained(load_base(tiny_assets["base"]), tiny_assets["skills"]["alpha"])
    lora.push_to_hub(hub_repo_id + "-lora")


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_corrupt_skill_weights_name_the_skill_and_the_file(tiny_assets, tmp_path, damage):
    skill = shutil.copytree(tiny_assets["skills"]["alpha"], tmp_path / "skill-alpha")
    weights = skill / "adapter_model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"\x00garbage" * 100)
    config = SkillRouterConfig(skills={"alpha": str(skill)}, task_type="CAUSAL_LM")
    with pytest.raises(ValueError, match=r"Skill 'alpha' .*cannot read its weights file .*adapter_model.safetensors.*"
                                         r"truncated or corrupt"):  # fmt: skip
        get_peft_model(load_base(tiny_assets["base"]), config)


def test_unreachable_hub_names_the_endpoint(tiny_assets, hub_server):
    """A skill on a Hub that cannot be reached: one message with the endpoint, not a transport traceback."""
    from samdkif_peft.hub.testing import run_in_fresh_process

    code = f"""
import samdkif_peft
from peft import get_peft_model
from transformers import AutoModelForCausalLM
config = samdkif_peft.SkillRouterConfig(skills={{"ner": "samdkif/skill-ner"}}, task_type="CAUSAL_LM")
try:
    get_peft_model(AutoModelForCausalLM.from_pretrained({tiny_assets["base"]!r}), config)
except ConnectionError as err:
    print("ERROR", err)
"""
    out = run_in_fresh_process(code, env={"HF_ENDPOINT": "http://127.0.0.1:9"})
    assert "ERROR Skill 'ner' (samdkif/skill-ner): the Hub at http://127.0.0.1:9 could not be reached" in out


def test_unreachable_hub_router_config_is_explained():
    from huggingface_hub.errors import LocalEntryNotFoundError

    from samdkif_peft.tuner.registration import explain_hub_failure

    try:
        try:
            raise LocalEntryNotFoundError("not cached")
        except LocalEntryNotFoundError:
            raise ValueError("Can't find 'adapter_config.json' at 'me/router'")  # noqa: B904 - what peft raises
    except ValueError as err:
        reason = explain_hub_failure(err, "Can't load the adapter config of 'me/router'")
    assert reason.startswith("Can't load the adapter config of 'me/router': the Hub at http://127.0.0.1:")
    assert explain_hub_failure(ValueError("unrelated"), "x") is None


@pytest.mark.slow
def test_unreachable_hub_router_load_names_the_endpoint(hub_server):
    """peft's own load of a router repo on an unreachable Hub (huggingface_hub retries for ~23 s first)."""
    from samdkif_peft.hub.testing import run_in_fresh_process

    code = """
import samdkif_peft
from peft import PeftConfig
try:
    PeftConfig.from_pretrained("me/router")
except ValueError as err:
    print("ERROR", err)
"""
    out = run_in_fresh_process(code, env={"HF_ENDPOINT": "http://127.0.0.1:9"})
    assert "ERROR Can't load the adapter config of 'me/router': the Hub at http://127.0.0.1:9 could not be" in out


def test_hub_serve_on_a_busy_port_is_one_line(tmp_path, capsys):
    import socket

    from samdkif_peft.cli import main as samdkif_main

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert samdkif_main(["hub", "serve", "--root", str(tmp_path / "hub"), "--port", str(port)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"samdkif hub serve: error: cannot serve at 127.0.0.1:{port}") and err.count("\n") == 1
    assert "pick another --port" in err


def test_cli_help_imports_no_heavy_library():
    """`samdkif --help` builds its parser without torch, transformers or peft (they take seconds to import)."""
    import subprocess
    import sys

    code = (
        "import sys, contextlib, io, samdkif_cli\n"
        "with contextlib.redirect_stdout(io.StringIO()) as out, contextlib.suppress(SystemExit):\n"
        "    samdkif_cli.main(['--help'])\n"
        "assert 'router' in out.getvalue() and 'skills' in out.getvalue()\n"
        "print(sorted(m for m in ('torch', 'transformers', 'peft', 'datasets') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_adalora_module_pruned_to_rank_zero_saves_without_zero3_warning(tiny_assets, tmp_path):
    import warnings

    from peft import AdaLoraConfig
    from safetensors.torch import load_file

    from samdkif_peft.training.callbacks import keep_rank_one

    config = AdaLoraConfig(init_r=4, target_r=2, total_step=10, target_modules=["q_proj", "v_proj"])
    model = get_peft_model(load_base(tiny_assets["base"]), config)
    names = [n for n, m in model.named_modules() if n.endswith("q_proj") and hasattr(m, "lora_E")]
    key = names[0].removeprefix("base_model.model.") + ".lora_E"
    pattern = {k: [True, True, False, False] for k in _rank_pattern_keys(model)}
    pattern[key] = [False] * 4  # what the allocator does to a module whose triplets all score low
    model.peft_config["default"].rank_pattern = pattern
    with warnings.catch_warnings(record=True) as before:
        warnings.simplefilter("always")
        model.save_pretrained(tmp_path / "unfixed")
    assert any("ZeRO-3" in str(w.message) for w in before)  # peft's misleading warning, the reason for the fix
    keep_rank_one(model.peft_config["default"])
    with warnings.catch_warnings(record=True) as after:
        warnings.simplefilter("always")
        model.save_pretrained(tmp_path / "fixed")
    assert not any("ZeRO-3" in str(w.message) for w in after)
    state = load_file(tmp_path / "fixed" / "adapter_model.safetensors")
    a_key = next(k for k in state if names[0].split("base_model.model.")[-1] in k and "lora_A" in k)
    assert state[a_key].shape[0] == 1
    # and the skill mixes: the router loads a skill whose module kept one triplet
    router = SkillRouterConfig(skills={"ada": str(tmp_path / "fixed")}, task_type="CAUSAL_LM")
    assert get_peft_model(load_base(tiny_assets["base"]), router).peft_config["default"].skill_lock["ada"]["sha256"]


def _rank_pattern_keys(model):
    return [n.removeprefix("base_model.model.") + ".lora_E" for n, m in model.named_modules() if hasattr(m, "lora_E")
            and not n.endswith("lora_E")]  # fmt: skip
