"""Read a LoRA or AdaLoRA skill and normalise it once into canonical factors `(A, B)` with the scale folded in.

Every skill then contributes `ΔW x = B (A x)` per module, whatever it was trained with (docs/PEFT_INTERNALS.md §4.4):
- LoRA: `A = lora_A`, `B = lora_B * s` with `s = alpha / r` (or `alpha / sqrt(r)` for rsLoRA), per-module `r`/`alpha`
  from `rank_pattern` / `alpha_pattern`.
- AdaLoRA: `A = lora_A * lora_E`, `B = lora_B * alpha / (init_r + 1e-5)` (its `ranknum` stays `init_r` after pruning).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field

import torch
from peft.utils import CONFIG_NAME
from peft.utils.other import get_pattern_key
from safetensors.torch import load_file

from .fingerprint import read_fingerprint
from .spec import ResolvedSkill


SUPPORTED_PEFT_TYPES = ("LORA", "ADALORA")
_CHECKPOINT_PREFIX = "base_model.model."
# LoRA options whose delta is not `B A x`, or that train more than the two factors: a skill using them cannot be mixed.
_UNSUPPORTED_OPTIONS = {
    "use_dora": "DoRA (its magnitude vector rescales the whole weight)",
    "lora_bias": "a bias on lora_B",
    "use_qalora": "QA-LoRA",
    "alora_invocation_tokens": "activated LoRA (aLoRA)",
    "arrow_config": "Arrow routing",
    "layer_replication": "layer replication",
    "target_parameters": "target_parameters (nn.Parameter targets)",
    "modules_to_save": "modules_to_save (fully trained extra modules)",
    "trainable_token_indices": "trainable tokens",
}


@dataclass
class SkillFactors:
    """One skill, normalised: module path (relative to the base model) -> (A [k, in], B [out, k]), scale folded in."""

    name: str
    peft_type: str
    base_model_name_or_path: str | None
    base_fingerprint: str | None = None  # skills.fingerprint: what the base weights looked like in training
    modules: dict[str, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)

    @property
    def ranks(self) -> dict[str, int]:
        return {m: a.shape[0] for m, (a, _) in self.modules.items()}


def read_adapter_config(directory: str) -> dict:
    with open(os.path.join(directory, CONFIG_NAME)) as f:
        return json.load(f)


def load_skill_factors(skill: ResolvedSkill, allow_pickle: bool = False) -> SkillFactors:
    """Load the weights of a resolved skill and fold its scaling into canonical factors."""
    name = skill.spec.name
    cfg = read_adapter_config(skill.directory)
    peft_type = str(cfg.get("peft_type", "")).upper()
    if peft_type not in SUPPORTED_PEFT_TYPES:
        raise ValueError(
            f"Skill {name!r} ({skill.spec.reference}) is a {peft_type or 'non-peft'} adapter; skills must be LoRA or "
            "AdaLoRA adapters (train it with LoraConfig or AdaLoraConfig)"
        )
    for option, what in _UNSUPPORTED_OPTIONS.items():
        if cfg.get(option):
            raise ValueError(
                f"Skill {name!r} uses {what} ({option}={cfg[option]!r}), which cannot be mixed as B·A factors; "
                f"retrain it without {option}"
            )
    if cfg.get("bias", "none") != "none":
        raise ValueError(f"Skill {name!r} trains biases (bias={cfg['bias']!r}); retrain it with bias='none'")

    try:
        state = _load_state_dict(skill.weights_file, allow_pickle)
    except Exception as err:  # noqa: BLE001 - safetensors raises its own SafetensorError; torch.load others
        if isinstance(err, ValueError) and "allow_pickle" in str(err):
            raise
        raise ValueError(
            f"Skill {name!r} ({skill.spec.reference}): cannot read its weights file {skill.weights_file!r} "
            f"({type(err).__name__}: {str(err)[:120]}); the file is truncated or corrupt. Re-download or re-save the "
            "skill."
        ) from err
    grouped: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in state.items():
        module, part = _split_key(name, key, peft_type)
        grouped.setdefault(module, {})[part] = tensor

    factors = SkillFactors(
        name=name,
        peft_type=peft_type,
        base_model_name_or_path=cfg.get("base_model_name_or_path"),
        base_fingerprint=read_fingerprint(skill.weights_file),
    )
    for module, parts in sorted(grouped.items()):
        expected = {"lora_A", "lora_B"} | ({"lora_E"} if peft_type == "ADALORA" else set())
        if set(parts) != expected:
            raise ValueError(
                f"Skill {name!r}: module {module!r} has weights {sorted(parts)}, expected {sorted(expected)}; "
                "the checkpoint is incomplete or not a LoRA/AdaLoRA adapter"
            )
        if peft_type == "LORA":
            a, b = _normalize_lora(cfg, module, parts)
        else:
            a, b = _normalize_adalora(cfg, module, parts)
        if a.ndim != 2 or b.ndim != 2 or a.shape[0] != b.shape[1]:
            raise ValueError(
                f"Skill {name!r}: module {module!r} has A {tuple(a.shape)} and B {tuple(b.shape)}, which do not "
                "chain as B·A (only nn.Linear targets are supported)"
            )
        factors.modules[module] = (a, b)
    if not factors.modules:
        raise ValueError(f"Skill {name!r} ({skill.spec.reference}) has no LoRA weights in {skill.weights_file!r}")
    return factors


def _load_state_dict(path: str, allow_pickle: bool) -> dict[str, torch.Tensor]:
    if path.endswith(".safetensors"):
        return load_file(path, device="cpu")
    if not allow_pickle:
        raise ValueError(f"Refusing to unpickle {path!r}; pass allow_pickle=True if you trust it")
    return torch.load(path, map_location="cpu", weights_only=True)


def _split_key(skill: str, key: str, peft_type: str) -> tuple[str, str]:
    """`base_model.model.<module>.lora_A[.weight]` -> (`<module>`, `lora_A`)."""
    body = key.removeprefix(_CHECKPOINT_PREFIX)
    body = body.removesuffix(".weight")
    module, _, part = body.rpartition(".")
    if part not in ("lora_A", "lora_B", "lora_E") or not module:
        kind = "embedding/conv LoRA weights" if "lora_embedding" in key else "a weight that is not a LoRA factor"
        raise ValueError(f"Skill {skill!r} ({peft_type}) has {kind} ({key!r}); only nn.Linear targets can be mixed")
    return module, part


def _normalize_lora(cfg: dict, module: str, parts: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    a, b = parts["lora_A"].float(), parts["lora_B"].float()
    r = a.shape[0]
    alpha = cfg.get("lora_alpha", 8)
    alpha_pattern = cfg.get("alpha_pattern") or {}
    if alpha_pattern:
        key = get_pattern_key(alpha_pattern.keys(), module)
        alpha = alpha_pattern.get(key, alpha)
    if r == 0:
        return a, b
    scale = alpha / math.sqrt(r) if cfg.get("use_rslora") else alpha / r
    return a, b * scale


def _normalize_adalora(cfg: dict, module: str, parts: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    a, b, e = parts["lora_A"].float(), parts["lora_B"].float(), parts["lora_E"].float()
    init_r = cfg.get("init_r", 12)
    alpha = cfg.get("lora_alpha", 8)
    scaling = alpha if alpha > 0 else float(init_r)
    # Same float32 arithmetic as SVDLinear: `... * scaling / (ranknum + 1e-5)` with ranknum = float(init_r).
    denom = torch.tensor(float(init_r), dtype=torch.float32) + 1e-5
    return a * e, (b * scaling) / denom
