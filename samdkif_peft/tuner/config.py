"""`SkillRouterConfig`: which frozen skills to mix and how the router that mixes them is shaped."""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from typing import Any

from peft.config import PeftConfig
from peft.utils import CONFIG_NAME, SAFETENSORS_WEIGHTS_NAME

from ..utils import atomic_copy, atomic_write_text, sha256_file
from .registration import SkillPeftType


ROUTER_KINDS = ("sequence", "token", "static")
# Bundled skills go one level deep (`skill_<name>/`): transformers' push_to_hub uploads only one level of folders.
BUNDLE_PREFIX = "skill_"
SEQUENCE_INPUTS = ("embeddings", "first_layer")
# Lower-case slugs that can never be a module-path segment or a number (peft drops keys containing `.<name>.`).
_SKILL_NAME_RE = re.compile(r"^[a-z][a-z0-9_-]*$")


@dataclass
class SkillRouterConfig(PeftConfig):
    """
    Configuration of a [`SkillRouterModel`]: frozen LoRA/AdaLoRA skills mixed into a frozen base model by a trained
    router (SA-MDKIF stage 2, "skill adaptation").

    Args:
        skills (`dict[str, str]`):
            Skill name -> where the skill adapter lives: a local directory, a Hub repo id, or
            `org/repo[/subfolder][@revision]`. Router columns follow the sorted skill names.
        router (`str`, *optional*, defaults to `"sequence"`):
            `"sequence"`: gates per adapted layer from the prompt (mean of the prompt's input embeddings), fixed for
            the whole generation (the paper's task-guided router). `"token"`: gates per token from each layer's input.
            `"static"`: learned gates per layer, independent of the input (mergeable).
        top_k (`int`, *optional*):
            Keep only the `top_k` largest gates per decision and renormalise over them.
        temperature (`float`, *optional*, defaults to 1.0):
            Softmax temperature of the router.
        null_expert (`bool`, *optional*, defaults to `False`):
            Add a "base model only" choice the router can put weight on.
        bundle_skills (`bool`, *optional*, defaults to `False`):
            On `save_pretrained`, copy every skill into `skill_<name>/` of the router directory and reference it
            relative to the router, so one repo holds everything.
        allow_pickle (`bool`, *optional*, defaults to `False`):
            Allow skills stored as pickled `adapter_model.bin`. Off: only safetensors are read.
        check_base_model (`bool`, *optional*, defaults to `True`):
            Refuse skills whose `base_model_name_or_path` differs from the model they are mixed into.
        task_rank (`int`, *optional*, defaults to 0):
            Rank of a task adapter trained jointly with the router (the "hybrid"): a LoRA on the same modules as the
            skills, so the router decides how much of each skill to use while the task adapter learns what no skill
            knows (an unseen label space). 0: router only, as in the paper.
        task_alpha (`float`, *optional*):
            Scale numerator of the task adapter (`task_alpha / task_rank`, as LoRA's `lora_alpha / r`); defaults to
            `2 * task_rank`.
        task_dropout (`float`, *optional*, defaults to 0.0):
            Dropout on the task adapter's input.
        skill_lock (`dict`, *optional*):
            Filled in at load time: resolved commit and sha256 of each skill's weights. Loading verifies them.
    """

    skills: dict[str, str] = field(
        default_factory=dict, metadata={"help": "Ordered skill name -> local path or Hub repo id[/subfolder][@rev]."}
    )
    router: str = field(default="sequence", metadata={"help": "Router kind: 'sequence', 'token' or 'static'."})
    sequence_input: str | None = field(
        default=None,
        metadata={
            "help": "What the sequence router pools over the prompt: 'embeddings' (the model's input embeddings) or "
            "'first_layer' (the input of the first adapted layer: any model peft can wrap). None: embeddings where "
            "the model has get_input_embeddings(), else first_layer; the choice is saved with the router."
        },
    )
    top_k: int | None = field(default=None, metadata={"help": "Keep the top-k gates per decision (None: all)."})
    temperature: float = field(default=1.0, metadata={"help": "Softmax temperature of the router."})
    null_expert: bool = field(default=False, metadata={"help": "Add a 'base model only' routing choice."})
    task_rank: int = field(default=0, metadata={"help": "Rank of a jointly trained task LoRA (0: router only)."})
    task_alpha: float | None = field(default=None, metadata={"help": "Task LoRA alpha (default: 2 * task_rank)."})
    task_dropout: float = field(default=0.0, metadata={"help": "Dropout on the task LoRA's input."})
    target_modules: list[str] | str | None = field(
        default=None, metadata={"help": "Filled from the skills: the module names they adapt (informational)."}
    )
    bundle_skills: bool = field(
        default=False, metadata={"help": "Copy the skills into the router directory on save_pretrained."}
    )
    allow_pickle: bool = field(default=False, metadata={"help": "Allow pickled (.bin) skill weights."})
    check_base_model: bool = field(
        default=True, metadata={"help": "Refuse skills trained on a different base_model_name_or_path."}
    )
    skill_lock: dict[str, dict[str, Any]] = field(
        default_factory=dict, metadata={"help": "Resolved revision and sha256 per skill; verified on load."}
    )
    router_weights_sha256: str | None = field(
        default=None, metadata={"help": "sha256 of the router weights saved next to this config (torn-save check)."}
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        self.peft_type = SkillPeftType.SKILL_ROUTER
        if self.sequence_input not in (None, *SEQUENCE_INPUTS):
            raise ValueError(f"sequence_input={self.sequence_input!r}; choose from {SEQUENCE_INPUTS} (or None: auto)")
        if not isinstance(self.skills, dict) or not self.skills:
            raise ValueError(
                "SkillRouterConfig needs `skills`, a non-empty dict of name -> adapter path or Hub repo id, e.g. "
                "skills={'ner': 'samdkif/skill-ner', 'nli': './skills/nli'}"
            )
        for name, ref in self.skills.items():
            if not isinstance(name, str) or not _SKILL_NAME_RE.match(name):
                raise ValueError(
                    f"Invalid skill name {name!r}: use a lower-case slug that starts with a letter "
                    "(letters, digits, '_' or '-'), e.g. 'ner' or 'entity_synonymy'"
                )
            if not isinstance(ref, (str, os.PathLike)) or not str(ref):
                raise TypeError(f"Skill {name!r} must map to a path or Hub repo id (str), got {ref!r}")
            self.skills[name] = os.fspath(ref)
        if self.router not in ROUTER_KINDS:
            raise ValueError(f"Unsupported router {self.router!r}; choose one of {', '.join(map(repr, ROUTER_KINDS))}")
        n_choices = len(self.skills) + int(self.null_expert)
        if self.top_k is not None and not (isinstance(self.top_k, int) and 1 <= self.top_k <= n_choices):
            raise ValueError(
                f"top_k must be an int in [1, {n_choices}] (number of routing choices), got {self.top_k!r}"
            )
        if not (isinstance(self.temperature, (int, float)) and self.temperature > 0):
            raise ValueError(f"temperature must be a positive number, got {self.temperature!r}")
        if isinstance(self.task_rank, bool) or not isinstance(self.task_rank, int) or self.task_rank < 0:
            raise ValueError(f"task_rank must be an int >= 0 (0: no task adapter), got {self.task_rank!r}")
        if self.task_alpha is not None and not (
            isinstance(self.task_alpha, (int, float)) and math.isfinite(self.task_alpha) and self.task_alpha > 0
        ):
            raise ValueError(f"task_alpha must be a positive number or None (2 * task_rank), got {self.task_alpha!r}")
        if not (isinstance(self.task_dropout, (int, float)) and 0.0 <= self.task_dropout < 1.0):
            raise ValueError(f"task_dropout must be in [0, 1), got {self.task_dropout!r}")
        if isinstance(self.target_modules, list):
            self.target_modules = set(self.target_modules)
        unknown = set(self.skill_lock) - set(self.skills)
        if unknown:
            raise ValueError(f"skill_lock has entries for unknown skills {sorted(unknown)}; remove them")

    @property
    def task_scale(self) -> float:
        """`task_alpha / task_rank`, the task adapter's output scale (0 when there is none)."""
        if not self.task_rank:
            return 0.0
        return float(self.task_alpha if self.task_alpha is not None else 2 * self.task_rank) / self.task_rank

    @property
    def skill_names(self) -> list[str]:
        """Router columns, in sorted name order: JSON writers sort keys, so dict order cannot survive a round trip."""
        return sorted(self.skills)

    # ----------------------------------------------------------------------------------------------------------
    # Save / load: pin the skills, optionally bundle them, and detect torn saves.

    def save_pretrained(self, save_directory: str, **kwargs: Any) -> None:
        """Write `adapter_config.json` atomically, after the weights (peft saves weights first).

        Records the sha256 of the router weights written next to it, so a crash between the two writes cannot load
        as a silently wrong router, and copies the skills in when `bundle_skills=True`.
        """
        if os.path.isfile(save_directory):
            raise ValueError(f"Provided path ({save_directory}) should be a directory, not a file")
        os.makedirs(save_directory, exist_ok=True)
        auto_mapping_dict = kwargs.pop("auto_mapping_dict", None)
        output = self.to_dict()
        weights = os.path.join(save_directory, SAFETENSORS_WEIGHTS_NAME)
        output["router_weights_sha256"] = sha256_file(weights) if os.path.isfile(weights) else None
        if self.bundle_skills:
            output["skills"], output["skill_lock"] = self._bundle_into(save_directory)
        else:
            output["skills"], output["skill_lock"] = self._local_skills_relative_to(save_directory)
        for key, value in output.items():
            if isinstance(value, set):
                output[key] = sorted(value)
        if auto_mapping_dict is not None:
            output["auto_mapping"] = auto_mapping_dict
        atomic_write_text(os.path.join(save_directory, CONFIG_NAME), json.dumps(output, indent=2, sort_keys=True))
        if os.path.isfile(os.path.join(save_directory, "README.md")):  # peft wrote its generic card: make it ours
            from ..hub.cards import update_router_card

            update_router_card(save_directory, output, _count_parameters(weights) if os.path.isfile(weights) else None)

    def _bundle_into(self, save_directory: str) -> tuple[dict[str, str], dict[str, dict[str, Any]]]:
        resolved = getattr(self, "_resolved_skill_dirs", None)
        if not resolved or set(resolved) != set(self.skills):
            raise ValueError(
                "bundle_skills=True needs the skills loaded: save through the model (model.save_pretrained), "
                "not a bare config"
            )
        skills, lock = {}, {}
        for name in self.skills:
            src_dir, files = resolved[name]
            dst_dir = os.path.join(save_directory, BUNDLE_PREFIX + name)
            os.makedirs(dst_dir, exist_ok=True)
            for fname in files:
                src, dst = os.path.join(src_dir, fname), os.path.join(dst_dir, fname)
                if os.path.abspath(src) != os.path.abspath(dst):
                    atomic_copy(src, dst)
            skills[name] = BUNDLE_PREFIX + name
            lock[name] = {**self.skill_lock.get(name, {}), "bundled": True, "revision": None}
        return skills, lock

    def local_skills(self) -> dict[str, str]:
        """Skills loaded from local folders (not bundled, not Hub): name -> absolute folder."""
        resolved = getattr(self, "_resolved_skill_dirs", None) or {}
        out = {}
        for name in self.skills:
            lock = self.skill_lock.get(name, {})
            if lock.get("bundled"):
                continue
            if name in resolved and lock.get("revision") is None:
                out[name] = os.path.abspath(resolved[name][0])
            elif lock.get("local_path"):
                out[name] = lock["local_path"]
        return out

    def _local_skills_relative_to(self, save_directory: str) -> tuple[dict[str, str], dict[str, dict[str, Any]]]:
        """Relative local skill paths are written relative to the router folder (so router and skills can move
        together); every local skill is also remembered by absolute path (so the router loads from any working
        directory on this machine, and a moved skill gets an error that says where it was)."""
        skills, lock = dict(self.skills), {k: dict(v) for k, v in self.skill_lock.items()}
        for name, folder in self.local_skills().items():
            if not os.path.isabs(os.path.expanduser(skills[name])):  # absolute paths are kept as the user gave them
                skills[name] = os.path.relpath(folder, os.path.abspath(save_directory))
            lock.setdefault(name, {})["local_path"] = folder
        return skills, lock

    def check_pushable(self, adapter_name: str = "default") -> None:
        """Refuse to publish a router whose skills exist only on this machine: every consumer would fail to load it."""
        local = self.local_skills()
        if local and not self.bundle_skills:
            raise ValueError(
                f"Router {adapter_name!r} uses local skill folder(s) {local}; a pushed router could not load them "
                "anywhere else. Push the skills first and reference them by repo id (e.g. `samdkif skills push`, "
                "skills={'ner': 'org/skill-ner'}), or save with bundle_skills=True to copy them into the router repo."
            )

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str, subfolder: str | None = None, **kwargs: Any):
        """Like `PeftConfig.from_pretrained`, remembering where the router came from (bundled skills live there)."""
        config = super().from_pretrained(pretrained_model_name_or_path, subfolder=subfolder, **kwargs)
        if isinstance(config, SkillRouterConfig):
            config._source = {
                "path": os.fspath(pretrained_model_name_or_path),
                "subfolder": subfolder,
                "revision": kwargs.get("revision"),
            }
            if config.router_weights_sha256:
                config.verify_router_weights()
        return config

    def verify_router_weights(self) -> None:
        """Compare the router weights next to this config with the sha256 recorded when they were saved."""
        from ..skills.spec import fetch_file

        source = getattr(self, "_source", None)
        if not source or not self.router_weights_sha256:
            return
        path = fetch_file(source["path"], SAFETENSORS_WEIGHTS_NAME, source["subfolder"], source["revision"])
        if path is None:
            return  # peft's own loader reports the missing file
        got = sha256_file(path)
        if got != self.router_weights_sha256:
            raise ValueError(
                f"Router weights at {source['path']!r} do not match its adapter_config.json (sha256 {got[:12]}..., "
                f"expected {self.router_weights_sha256[:12]}...): the save was interrupted or the file was replaced. "
                "Save the router again."
            )


def _count_parameters(safetensors_file: str) -> int:
    from safetensors import safe_open

    with safe_open(safetensors_file, framework="pt") as f:
        return sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys())
