"""Release the twelve skills: train (or resume) each one, package it as a Hub adapter repo, push the repos.

    samdkif skills release                    # train what is missing (runs/medical/skills), package release/skills
    samdkif skills push --namespace samdkif   # upload release/skills/skill-<name> as samdkif/skill-<name>

A released skill folder holds exactly what a user needs: `adapter_config.json`, `adapter_model.safetensors` (with the
base-weights fingerprint in its metadata, `skills.fingerprint`) and a model card (`hub_cards/skill.md`: base model,
data sources and licences, training settings, losses, usage). Training is the pipeline's own skill stage
(`pipeline.ensure_skill`), so the release and `samdkif pipeline run` share skills and both resume after a stop.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..utils import atomic_write_text


logger = logging.getLogger(__name__)

SKILL_SIZE_LIMIT = 2 * 1024 * 1024  # a skill repo stays small: LoRA r8 on q,v of SmolLM2 is 1.8 MB in float32
DEFAULT_RELEASE_DIR = os.path.join("release", "skills")
DEFAULT_WORK_DIR = os.path.join("runs", "medical")


def release_skills(
    out_dir: str | os.PathLike[str] = DEFAULT_RELEASE_DIR,
    *,
    work_dir: str | os.PathLike[str] = DEFAULT_WORK_DIR,
    skills: Sequence[str] | None = None,
    base_model: str | os.PathLike[str] | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    seed: int = 42,
    max_steps: int = -1,
    train_samples: int | None = None,
) -> dict[str, str]:
    """Train (or resume) and package `skills` (default: all 12); returns `{name: released folder}`.

    Args:
        out_dir: where `skill-<name>/` repos are written (replaced atomically when re-released).
        work_dir: the pipeline folder whose `skills/<name>` holds the training runs and checkpoints.
        max_steps / train_samples: smaller budgets for checks; the release defaults are one epoch over all records.
    """
    from ..base_model import load_base_model, resolve_base_model
    from ..data.fetch import default_cache_dir
    from ..pipeline import PipelineConfig, ensure_skill

    config = PipelineConfig(out_dir=os.fspath(work_dir), skills=list(skills) if skills else None, seed=seed,
                            skill_max_steps=max_steps, skill_train_samples=train_samples)  # fmt: skip
    base = resolve_base_model(base_model)
    data = os.fspath(data_dir or default_cache_dir() / "datasets")
    _build_missing_data(config.skills, data)
    cache: dict[str, Any] = {}

    def model():  # loaded once, and only to fingerprint a skill trained before skills were stamped
        if "model" not in cache:
            cache["model"] = load_base_model(base, dtype="float32")[0]
        return cache["model"]

    released = {}
    for name in config.skills:
        trained = ensure_skill(config, name, base, data, Path(work_dir))
        released[name] = package_skill(name, trained, Path(out_dir), base_model=base, data_dir=data, model=model)
        logger.info("released %s -> %s", name, released[name])
    return released


def _build_missing_data(skills: Sequence[str], data_dir: str) -> None:
    from ..data.build import DataBuildConfig, build, missing_datasets

    if missing_datasets(data_dir, skills=skills):
        build(DataBuildConfig(out_dir=data_dir))


def package_skill(
    name: str,
    trained_dir: str | os.PathLike[str],
    out_dir: Path,
    *,
    base_model: str,
    data_dir: str,
    model: Callable[[], Any],
) -> str:
    """Copy the adapter files of a finished training run into `out_dir/skill-<name>` with its fingerprint and card."""
    from peft.utils import CONFIG_NAME, SAFETENSORS_WEIGHTS_NAME

    from ..skills.fingerprint import read_fingerprint, stamp_skill
    from ..skills.shipped import SKILL_REPO_PREFIX
    from ..training.common import RESULTS_FILE

    trained = Path(trained_dir)
    weights = trained / SAFETENSORS_WEIGHTS_NAME
    if not weights.is_file():
        raise FileNotFoundError(f"Skill {name!r}: no {SAFETENSORS_WEIGHTS_NAME} in {trained}; finish training first")
    if weights.stat().st_size > SKILL_SIZE_LIMIT:
        raise ValueError(
            f"Skill {name!r}: {weights} is {weights.stat().st_size / 2**20:.1f} MiB, over the "
            f"{SKILL_SIZE_LIMIT / 2**20:.0f} MiB a released skill may weigh; lower the rank or adapt fewer modules"
        )
    target = out_dir / f"{SKILL_REPO_PREFIX}{name}"
    staging = out_dir / f".{SKILL_REPO_PREFIX}{name}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for filename in (CONFIG_NAME, SAFETENSORS_WEIGHTS_NAME):
        shutil.copy2(trained / filename, staging / filename)
    fingerprint = read_fingerprint(staging / SAFETENSORS_WEIGHTS_NAME) or stamp_skill(staging, model())
    results = json.loads((trained / RESULTS_FILE).read_text())
    config = json.loads((staging / CONFIG_NAME).read_text())
    card = render_skill_card(name, config, results, fingerprint=fingerprint, base_model=base_model, data_dir=data_dir)
    atomic_write_text(str(staging / "README.md"), card)
    shutil.rmtree(target, ignore_errors=True)
    os.replace(staging, target)
    return str(target)


def render_skill_card(
    name: str, config: dict[str, Any], results: dict[str, Any], *, fingerprint: str, base_model: str, data_dir: str
) -> str:
    """The skill's model card from `hub_cards/skill.md`."""
    import jinja2

    from hub_cards import template_path

    from ..base_model import BASE_MODEL_NAME, SMOLLM2
    from ..data import SKILLS
    from ..skills.shipped import HUB_NAMESPACE, SKILL_REPO_PREFIX
    from ..training.common import SKILL_TRAINING_DEFAULTS

    spec = SKILLS[name]
    settings = [
        ("adapter", f"{config['peft_type']} r {config.get('r')}, alpha {config.get('lora_alpha')}, dropout "
                    f"{config.get('lora_dropout')}"),
        ("target modules", ", ".join(sorted(config.get("target_modules") or []))),
        ("training records", results.get("train_samples")),
        ("optimizer steps", results.get("global_step")),
        ("epochs", results.get("epoch")),
        ("learning rate", results.get("learning_rate", SKILL_TRAINING_DEFAULTS["learning_rate"])),
        ("schedule", results.get("lr_scheduler_type", SKILL_TRAINING_DEFAULTS["lr_scheduler_type"])),
        ("batch size", results.get("per_device_train_batch_size",
                                   SKILL_TRAINING_DEFAULTS["per_device_train_batch_size"])),
        ("seed", results.get("seed", SKILL_TRAINING_DEFAULTS["seed"])),
        ("max length (tokens)", results.get("max_length")),
        ("precision", "bfloat16 autocast, float32 adapter weights"),
        ("train loss (mean over the run)", _round(results.get("train_loss"))),
        (f"eval loss ({results.get('eval_samples')} validation records)", _round(results.get("eval_loss"))),
        ("train runtime (s, 2 CPU cores)", _round(results.get("train_runtime"), 0)),
    ]  # fmt: skip
    return jinja2.Template(template_path("skill").read_text(), trim_blocks=True).render(
        name=name,
        description=spec.description,
        note=spec.note,
        peft_type={"LORA": "LoRA", "ADALORA": "AdaLoRA"}.get(config["peft_type"], config["peft_type"]),
        repo_id=f"{HUB_NAMESPACE}/{SKILL_REPO_PREFIX}{name}",
        settings=[(k, v) for k, v in settings if v is not None],
        base_model_id="HuggingFaceTB/SmolLM2-135M-Instruct",
        base_model_title=BASE_MODEL_NAME,
        base_model_attribution=SMOLLM2.attribution,
        base_model_licence=SMOLLM2.licence,
        base_model_path=config.get("base_model_name_or_path") or base_model,
        fingerprint=fingerprint,
        sources=_sources_section(Path(data_dir) / "skills" / name / "README.md"),
    )


def _round(value: Any, digits: int = 4) -> Any:
    return round(value, digits) if isinstance(value, float) else value


def _sources_section(dataset_card: Path) -> str:
    """The built dataset card's source table (files, counts, licences, attribution) and its HPO version line."""
    if not dataset_card.is_file():
        return f"(dataset card {dataset_card} not found: run `samdkif data build`)"
    text = dataset_card.read_text()
    start, end = text.find("## Sources"), text.find("## Splits")
    if start < 0:
        return "(the dataset card has no Sources section)"
    return text[start + len("## Sources") : end if end > 0 else None].strip()


def push_skills(
    release_dir: str | os.PathLike[str] = DEFAULT_RELEASE_DIR, *, namespace: str | None = None
) -> dict[str, str]:
    """Upload every `skill-<name>` folder to `<namespace>/skill-<name>`; returns `{repo_id: commit sha}`."""
    from huggingface_hub import HfApi

    from ..skills.shipped import HUB_NAMESPACE, SKILL_REPO_PREFIX

    folders = sorted(p for p in Path(release_dir).glob(f"{SKILL_REPO_PREFIX}*") if (p / "README.md").is_file())
    if not folders:
        raise FileNotFoundError(f"No released skills in {release_dir}; run `samdkif skills release` first")
    api, pushed = HfApi(), {}
    for folder in folders:
        repo_id = f"{namespace or HUB_NAMESPACE}/{folder.name}"
        api.create_repo(repo_id, exist_ok=True)
        commit = api.upload_folder(repo_id=repo_id, folder_path=str(folder), commit_message="samdkif skills push")
        pushed[repo_id] = commit.oid
        logger.info("pushed %s (%s)", repo_id, commit.oid[:12])
    return pushed
