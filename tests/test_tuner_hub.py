"""Skills and routers as Hub artifacts, against the offline Hub server with the real huggingface_hub client."""

from __future__ import annotations

import json
import textwrap

import pytest
import torch
from huggingface_hub import HfApi
from peft import PeftModel, get_peft_model

from samdkif_peft import SkillRouterConfig
from samdkif_peft.hub.testing import run_in_fresh_process

from .conftest import load_base, make_lora_skill, randomize_router


PROMPT = [[5, 17, 33, 9, 41, 60, 7]]


def _push_skills(assets, prefix: str) -> dict[str, str]:
    repos = {}
    for name, path in assets["skills"].items():
        repo = f"{prefix}-skill-{name}"
        model = PeftModel.from_pretrained(load_base(assets["base"]), path)
        model.push_to_hub(repo)
        repos[name] = repo
    return repos


def _fresh_logits(code_loading_model: str, tmp_path) -> torch.Tensor:
    out = tmp_path / "logits.pt"
    code = textwrap.dedent(
        f"""
        import torch, samdkif_peft
        from peft import PeftModel, AutoPeftModelForCausalLM
        from transformers import AutoModelForCausalLM
        {code_loading_model}
        with torch.no_grad():
            torch.save(model.eval()(input_ids=torch.tensor({PROMPT})).logits, {str(out)!r})
        """
    )
    run_in_fresh_process(code)
    return torch.load(out)


def _logits(model) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(input_ids=torch.tensor(PROMPT)).logits


def test_router_from_hub_skills_pins_revisions(hub_server, hub_repo_id, tiny_assets, tmp_path):
    skills = _push_skills(tiny_assets, hub_repo_id)
    config = SkillRouterConfig(skills={**skills, "beta": skills["beta"] + "@main"}, task_type="CAUSAL_LM")
    model = get_peft_model(load_base(tiny_assets["base"]), config)
    randomize_router(model)
    expected = _logits(model)
    api = HfApi()
    alpha_sha = api.model_info(skills["alpha"]).sha
    assert model.peft_config["default"].skill_lock["alpha"]["revision"] == alpha_sha

    router_repo = f"{hub_repo_id}-router"
    model.push_to_hub(router_repo)
    first_commit = api.model_info(router_repo).sha
    saved = json.loads(open(api.hf_hub_download(router_repo, "adapter_config.json")).read())
    assert saved["peft_type"] == "SKILL_ROUTER" and saved["skill_lock"]["alpha"]["revision"] == alpha_sha
    files = set(api.list_repo_files(router_repo))
    assert (
        {"adapter_config.json", "adapter_model.safetensors"}
        <= files
        <= {".gitattributes", "README.md", "adapter_config.json", "adapter_model.safetensors"}
    )  # router weights only: the skills stay in their own repos

    # The skill repo moves on: the router keeps loading the commit it was trained with.
    make_lora_skill(tiny_assets["base"], str(tmp_path / "alpha-v2"), seed=99)
    api.upload_folder(repo_id=skills["alpha"], folder_path=str(tmp_path / "alpha-v2"))
    assert api.model_info(skills["alpha"]).sha != alpha_sha

    # ...and the router repo moves on too; the old router stays loadable by its commit.
    randomize_router(model, seed=1234)
    model.push_to_hub(router_repo)
    assert api.model_info(router_repo).sha != first_commit

    base = tiny_assets["base"]
    by_revision = _fresh_logits(
        f"model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained({base!r}), {router_repo!r}, "
        f"revision={first_commit!r})",
        tmp_path,
    )
    assert torch.equal(by_revision, expected)
    latest = _fresh_logits(f"model = AutoPeftModelForCausalLM.from_pretrained({router_repo!r})", tmp_path)
    assert torch.equal(latest, _logits(model))


def test_bundled_router_on_hub_is_self_contained(hub_server, hub_repo_id, tiny_assets, tmp_path):
    config = SkillRouterConfig(skills=dict(tiny_assets["skills"]), task_type="CAUSAL_LM", bundle_skills=True,
                               router="token")  # fmt: skip
    model = get_peft_model(load_base(tiny_assets["base"]), config)
    randomize_router(model)
    model.push_to_hub(hub_repo_id)
    files = HfApi().list_repo_files(hub_repo_id)
    assert {f"skill_{n}/adapter_model.safetensors" for n in tiny_assets["skills"]} <= set(files)
    loaded = _fresh_logits(f"model = AutoPeftModelForCausalLM.from_pretrained({hub_repo_id!r})", tmp_path)
    assert torch.equal(loaded, _logits(model))


def test_missing_hub_skill_is_a_clear_error(hub_server, hub_repo_id, tiny_assets):
    config = SkillRouterConfig(skills={"ghost": f"{hub_repo_id}-does-not-exist"}, task_type="CAUSAL_LM")
    with pytest.raises(FileNotFoundError, match="was not found on the Hub"):
        get_peft_model(load_base(tiny_assets["base"]), config)


def test_skills_from_subfolders_of_one_repo(hub_server, hub_repo_id, tiny_assets, tmp_path):
    api = HfApi()
    api.create_repo(hub_repo_id)
    for name in ("alpha", "gamma"):
        api.upload_folder(repo_id=hub_repo_id, folder_path=tiny_assets["skills"][name], path_in_repo=f"skills/{name}")
    sha = api.model_info(hub_repo_id).sha
    config = SkillRouterConfig(
        skills={"alpha": f"{hub_repo_id}/skills/alpha", "gamma": f"{hub_repo_id}/skills/gamma@{sha}"},
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(load_base(tiny_assets["base"]), config)
    local = get_peft_model(
        load_base(tiny_assets["base"]),
        SkillRouterConfig(skills={n: tiny_assets["skills"][n] for n in ("alpha", "gamma")}, task_type="CAUSAL_LM"),
    )
    assert torch.equal(_logits(model), _logits(local))
    assert {v["revision"] for v in model.peft_config["default"].skill_lock.values()} == {sha}
