"""The skill bank of a router: its skills resolved, pinned, checked and concatenated per module, and how a save
writes their references back (relative to the router, bundled into it, or pinned to a Hub commit).

What loading learns travels on the router's config: the pins in `skill_lock` (a saved field of adapter_config.json),
and, never saved, where the router was read from (`config.origin`) and where each loaded skill's files are
(`config.resolved_skills`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from peft.tuners.tuners_utils import BaseTunerLayer
from torch import nn

from ..utils import atomic_copy
from .compat import check_compatible
from .factors import load_skill_factors
from .spec import ResolvedSkill, SkillReference, parse_skill_reference, resolve_skill


if TYPE_CHECKING:
    from ..tuner.config import SkillRouterConfig

# Bundled skills go one level deep (`skill_<name>/`): transformers' push_to_hub uploads only one level of folders.
BUNDLE_PREFIX = "skill_"


@dataclass(frozen=True)
class RouterOrigin:
    """Where a saved router was read from: bundled and relative skill references resolve against it."""

    path: str
    subfolder: str | None = None
    revision: str | None = None

    @property
    def root(self) -> str:
        return os.path.join(self.path, self.subfolder or "")


class SkillBank:
    def __init__(self, modules: dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]):
        self.modules = modules  # module path -> (A_cat (K, in), B_cat (out, K), slot -> skill index (K,))


def load_skill_bank(config: SkillRouterConfig, model: nn.Module) -> SkillBank:
    """Resolve, verify and load every skill of `config`, check them against `model`, and pin what was loaded."""
    resolved = [resolve_pinned_skill(config, name) for name in config.skill_names]
    factors = [load_skill_factors(r, allow_pickle=config.allow_pickle) for r in resolved]
    check_compatible(model, factors, check_base_model=config.check_base_model)
    # Pin what was loaded; the next save writes it and the next load verifies it.
    config.skill_lock = {
        r.spec.name: {"revision": r.revision, "sha256": r.sha256, "peft_type": f.peft_type}
        for r, f in zip(resolved, factors)
    }
    config.resolved_skills = {r.spec.name: r for r in resolved}

    modules_dtype = {name: module for name, module in model.named_modules()}
    bank = {}
    for module in sorted(factors[0].modules):
        weight = _base_weight(modules_dtype[module])
        a = torch.cat([f.modules[module][0] for f in factors], dim=0)
        b = torch.cat([f.modules[module][1] for f in factors], dim=1)
        slots = torch.cat([torch.full((f.modules[module][0].shape[0],), i) for i, f in enumerate(factors)])
        bank[module] = (a.to(weight.device, weight.dtype), b.to(weight.device, weight.dtype), slots.to(weight.device))
    return SkillBank(bank)


def resolve_pinned_skill(config: SkillRouterConfig, name: str) -> ResolvedSkill:
    """Fetch skill `name` where the router says it is, and refuse it if its weights differ from the pinned sha256."""
    reference = config.skills[name]
    lock = config.skill_lock.get(name, {})
    spec = _spec_for(config.origin, name, reference, lock)
    skill = resolve_skill(spec, allow_pickle=config.allow_pickle)
    expected = lock.get("sha256")
    if expected and expected != skill.sha256:
        raise ValueError(
            f"Skill {name!r} changed since this router was trained: {spec.reference} now has weights sha256 "
            f"{skill.sha256[:12]}..., the router was trained with {expected[:12]}.... Pin the old revision, or "
            "retrain the router on the new skill."
        )
    return skill


def _spec_for(origin: RouterOrigin | None, name: str, reference: str, lock: Mapping[str, Any]) -> SkillReference:
    if lock.get("bundled"):
        # Bundled skills live in the router repo itself: resolve relative to where the router was loaded from.
        if origin is None:
            raise ValueError(
                f"Skill {name!r} is bundled in the router repo ({reference!r}) but the router's location is unknown "
                "(transformers' from_pretrained/load_adapter does not pass it on); load the router with "
                "PeftModel.from_pretrained or AutoPeftModelForCausalLM.from_pretrained"
            )
        if os.path.isdir(origin.root):
            return parse_skill_reference(name, os.path.join(origin.root, reference))
        sub = "/".join(p for p in (origin.subfolder, reference) if p)
        return SkillReference(name, reference, repo_id=origin.path, subfolder=sub, revision=origin.revision)
    base_dir = origin.root if origin is not None and os.path.isdir(origin.path) else None
    if _was_local(lock):
        return _local_spec(name, reference, lock, base_dir)
    try:
        spec = parse_skill_reference(name, reference, base_dir=base_dir)
    except FileNotFoundError as err:
        if origin is None and not os.path.isabs(reference):
            # transformers' from_pretrained/load_adapter build the config without telling us where it came from.
            raise FileNotFoundError(
                f"{err} Relative skill paths are resolved against the router directory, whose location is unknown "
                "here (transformers' loader does not pass it on): load the router with PeftModel.from_pretrained or "
                "AutoPeftModelForCausalLM.from_pretrained, or reference the skill by absolute path or Hub repo id."
            ) from err
        raise
    if spec.repo_id is not None and lock.get("revision"):
        spec = SkillReference(
            name, reference, repo_id=spec.repo_id, subfolder=spec.subfolder, revision=lock["revision"]
        )
    return spec


def _was_local(lock: Mapping[str, Any]) -> bool:
    """A pinned skill that was a local folder when the router was saved: pinned by hash, with no Hub revision."""
    pinned_locally = lock.get("sha256") and not lock.get("revision") and not lock.get("bundled")
    return bool(lock.get("local_path") or pinned_locally)


def _local_spec(name: str, reference: str, lock: Mapping[str, Any], base_dir: str | None) -> SkillReference:
    """Find a skill that was local: next to the router, then where it was saved from, then the working directory;
    never on the Hub (a path such as `runs/skills/ner` would otherwise be taken for the repo `runs/skills`)."""
    candidates = [os.path.join(base_dir, reference)] if base_dir and not os.path.isabs(reference) else []
    candidates += [p for p in (lock.get("local_path"), reference) if p]
    for candidate in candidates:
        if os.path.isdir(candidate):
            return SkillReference(name=name, reference=reference, path=os.path.abspath(candidate))
    tried = ", ".join(dict.fromkeys(os.path.abspath(c) for c in candidates))
    raise FileNotFoundError(
        f"Skill {name!r} was a local folder when this router was saved and is not there now (looked in: {tried}). "
        "Put the skill back (or next to the router at the same relative path), or re-save the router with "
        "bundle_skills=True or with the skill pushed to the Hub and referenced by repo id."
    )


def _base_weight(module: nn.Module) -> torch.Tensor:
    if isinstance(module, BaseTunerLayer):
        module = module.get_base_layer()
    return module.weight


# ----------------------------------------------------------------------------------------------------------------
# Saving: the skill references and pins a saved router carries.


def saved_skills(config: SkillRouterConfig, save_directory: str) -> tuple[dict[str, str], dict[str, dict[str, Any]]]:
    """`(skills, skill_lock)` as a router saved to `save_directory` records them: bundled into it when
    `bundle_skills=True` (files copied), else local skills relative to it."""
    if config.bundle_skills:
        return _bundle_into(config, save_directory)
    return _local_skills_relative_to(config, save_directory)


def _bundle_into(config: SkillRouterConfig, save_directory: str) -> tuple[dict[str, str], dict[str, dict[str, Any]]]:
    resolved = config.resolved_skills
    if not resolved or set(resolved) != set(config.skills):
        raise ValueError(
            "bundle_skills=True needs the skills loaded: save through the model (model.save_pretrained), "
            "not a bare config"
        )
    skills, lock = {}, {}
    for name in config.skills:
        skill = resolved[name]
        dst_dir = os.path.join(save_directory, BUNDLE_PREFIX + name)
        os.makedirs(dst_dir, exist_ok=True)
        for fname in skill.files:
            src, dst = os.path.join(skill.directory, fname), os.path.join(dst_dir, fname)
            if os.path.abspath(src) != os.path.abspath(dst):
                atomic_copy(src, dst)
        skills[name] = BUNDLE_PREFIX + name
        lock[name] = {**config.skill_lock.get(name, {}), "bundled": True, "revision": None}
    return skills, lock


def _local_skills_relative_to(
    config: SkillRouterConfig, save_directory: str
) -> tuple[dict[str, str], dict[str, dict[str, Any]]]:
    """Relative local skill paths are written relative to the router folder (so router and skills can move
    together); every local skill is also remembered by absolute path (so the router loads from any working
    directory on this machine, and a moved skill gets an error that says where it was)."""
    skills, lock = dict(config.skills), {k: dict(v) for k, v in config.skill_lock.items()}
    for name, folder in local_skills(config).items():
        if not os.path.isabs(os.path.expanduser(skills[name])):  # absolute paths are kept as the user gave them
            skills[name] = os.path.relpath(folder, os.path.abspath(save_directory))
        lock.setdefault(name, {})["local_path"] = folder
    return skills, lock


def local_skills(config: SkillRouterConfig) -> dict[str, str]:
    """Skills loaded from local folders (not bundled, not Hub): name -> absolute folder."""
    out = {}
    for name in config.skills:
        lock = config.skill_lock.get(name, {})
        if lock.get("bundled"):
            continue
        if name in config.resolved_skills and lock.get("revision") is None:
            out[name] = os.path.abspath(config.resolved_skills[name].directory)
        elif lock.get("local_path"):
            out[name] = lock["local_path"]
    return out


def check_pushable(config: SkillRouterConfig, adapter_name: str = "default") -> None:
    """Refuse to publish a router whose skills exist only on this machine: every consumer would fail to load it."""
    local = local_skills(config)
    if local and not config.bundle_skills:
        raise ValueError(
            _unpushable(f"Router {adapter_name!r} uses local skill folder(s) {local}", "bundle_skills=True")
        )


def check_pushable_references(skills: Mapping[str, str], bundle_flag: str = "--bundle-skills") -> None:
    """The same refusal from skill references alone, before any model loads (`samdkif router train --push-to-hub`)."""
    local = [name for name, ref in skills.items() if os.path.isdir(os.path.expanduser(ref))]
    if local:
        raise ValueError(_unpushable(f"Skill(s) {', '.join(local)} are local folders", bundle_flag))


def _unpushable(what: str, bundle: str) -> str:
    return (
        f"{what}; a pushed router could not load them anywhere else. Push the skills first and reference them by "
        f"repo id (`samdkif skills push`, then e.g. skills={{'ner': 'org/skill-ner'}} or --skills org/skill-ner), "
        f"or add {bundle} to copy them into the router repo."
    )
