"""`SkillRouterConfig`: which frozen skills to mix and how the router that mixes them is shaped."""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from typing import Any

from peft.config import PeftConfig

from ..skills.bank import RouterOrigin
from ..skills.spec import ResolvedSkill
from .registration import SkillPeftType
from .router import describe_routers, get_router


SEQUENCE_INPUTS = ("embeddings", "first_layer", "layer:<N>")
GATE_SCOPES = ("module", "layer", "model")
# The router alone shares one gate between all modules: on ICD-10-CM NLI (all records) per-module gates spread over
# skills (0.47 on `nli`) and answered one label, one gate took the `nli` skill (1.00) and +0.186 macro-F1
# [+0.120, +0.259]; level on chapters, HPO QA, DDI and rare disease; behind on Elixhauser (micro-F1 0.000 vs
# 0.059), where no skill fits and both are far below the base model. The hybrid keeps per-module gates
# (docs/DEFAULTS.md, MEDICAL_VALUE.md section 29).
ROUTER_ALONE_GATE_SCOPE = "model"
_LAYER_INPUT_RE = re.compile(r"^layer:(\d+)$")
# Lower-case slugs that can never be a module-path segment or a number (peft drops keys containing `.<name>.`).
_SKILL_NAME_RE = re.compile(r"^[a-z][a-z0-9_-]*$")


def default_gate_scope(task_rank: int, router: str = "sequence") -> str:
    """The `gate_scope` a config gets when none is given: one gate for the router alone, per-module gates for the
    hybrid and for kinds that read each layer's input (a token router; one gate measured only for prompt routers, and
    it cannot read inputs of different sizes)."""
    if task_rank == 0 and get_router(router).ignores_layer_input:
        return ROUTER_ALONE_GATE_SCOPE
    return "module"


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
            A router kind registered in `tuner/router.py`, where each kind declares what it does: `"sequence"` (the
            paper's task-guided router), `"token"` or `"static"` (mergeable).
        top_k (`int`, *optional*):
            Keep only the `top_k` largest gates per decision and renormalise over them.
        temperature (`float`, *optional*, defaults to 1.0):
            Softmax temperature of the router.
        null_expert (`bool`, *optional*, defaults to `False`):
            Add a "base model only" choice the router can put weight on.
        gate_scope (`str`, *optional*):
            Which adapted modules share one gate: `"module"` (each its own), `"layer"` (the modules of one decoder
            block, e.g. its q_proj and v_proj) or `"model"` (one gate for every module, as X-LoRA's classifier
            without layerwise scalings). A shared gate sums the gradients of every module it serves. `None` (the
            default) picks what measured best: `"model"` for a router alone (`task_rank=0`) of a kind that ignores
            the layer's input (`"sequence"`, `"static"`), `"module"` for the hybrid and the token router
            (`default_gate_scope`). A router saved before this option existed loads with `"module"`, as trained.
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
    router: str = field(default="sequence", metadata={"help": f"Router kind: {describe_routers()}."})
    sequence_input: str | None = field(
        default=None,
        metadata={
            "help": "What the sequence router pools over the prompt: 'embeddings' (the model's input embeddings), "
            "'first_layer' (the input of the first adapted layer: any model peft can wrap) or 'layer:N' (the hidden "
            "state entering decoder block N, from a pass of the base model through blocks 0..N-1 without the skills, "
            "once per prompt: it tells records of one task apart, which pooled embeddings hardly do). None: "
            "embeddings where the model has get_input_embeddings(), else first_layer; the choice is saved."
        },
    )
    top_k: int | None = field(default=None, metadata={"help": "Keep the top-k gates per decision (None: all)."})
    temperature: float = field(default=1.0, metadata={"help": "Softmax temperature of the router."})
    null_expert: bool = field(default=False, metadata={"help": "Add a 'base model only' routing choice."})
    gate_scope: str | None = field(
        default=None,
        metadata={
            "help": "Which adapted modules share one gate: 'module' (each its own), 'layer' (the modules of one "
            "decoder block) or 'model' (one gate for all modules). None: 'model' for a sequence or static "
            "router alone, 'module' for the hybrid and the token router; the choice is saved."
        },
    )
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
        # Load-time state, not dataclass fields, so never saved: where this config was read from (bundled and
        # relative skills resolve against it) and the skills the model loaded (a bundling save copies their files).
        self.origin: RouterOrigin | None = None
        self.resolved_skills: dict[str, ResolvedSkill] = {}
        if self.sequence_input not in (None, *SEQUENCE_INPUTS[:2]) and not _LAYER_INPUT_RE.match(
            str(self.sequence_input)
        ):
            raise ValueError(
                f"sequence_input={self.sequence_input!r}; choose from {SEQUENCE_INPUTS} (e.g. 'layer:15') or None"
            )
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
        get_router(self)  # raises, listing the registered kinds
        if self.gate_scope is None:
            # A saved router records its weights' sha256 (safetensors) and its skills' pins; one without a
            # gate_scope was saved before the option existed, when every module had its own gate.
            legacy = bool(self.router_weights_sha256 or self.skill_lock)
            self.gate_scope = "module" if legacy else default_gate_scope(self.task_rank, self.router)
        if self.gate_scope not in GATE_SCOPES:
            raise ValueError(f"gate_scope={self.gate_scope!r}; choose from {GATE_SCOPES}")
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
    # The hooks peft calls to write and read adapter_config.json; the file work lives in `saving` and `skills.bank`.

    def save_pretrained(self, save_directory: str, **kwargs: Any) -> None:
        """Write `adapter_config.json` with the skills pinned (and bundled on request) and the weights' sha256."""
        from .saving import write_config

        write_config(self, save_directory, kwargs.pop("auto_mapping_dict", None))

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str, subfolder: str | None = None, **kwargs: Any):
        """Like `PeftConfig.from_pretrained`, remembering where the router came from (bundled skills live there)."""
        from .saving import verify_router_weights

        config = super().from_pretrained(pretrained_model_name_or_path, subfolder=subfolder, **kwargs)
        if isinstance(config, SkillRouterConfig):
            config.origin = RouterOrigin(os.fspath(pretrained_model_name_or_path), subfolder, kwargs.get("revision"))
            verify_router_weights(config)
        return config
