"""Whether a router's skills can be mixed into a model: same modules, fitting shapes, the same base weights."""

from __future__ import annotations

import os
import warnings

from peft.tuners.tuners_utils import BaseTunerLayer
from torch import nn

from .factors import SkillFactors
from .fingerprint import base_model_fingerprint


def check_compatible(model: nn.Module, factors: list[SkillFactors], check_base_model: bool = True) -> None:
    """All skills must adapt the same modules of this very model; say exactly what differs."""
    ref = factors[0]
    for f in factors[1:]:
        if set(f.modules) != set(ref.modules):
            only_f, only_ref = sorted(set(f.modules) - set(ref.modules)), sorted(set(ref.modules) - set(f.modules))
            raise ValueError(
                f"Skills {ref.name!r} and {f.name!r} adapt different modules: only {f.name!r} has "
                f"{_short(only_f)}, only {ref.name!r} has {_short(only_ref)}. Train all skills with the same "
                "target_modules."
            )
    if check_base_model:
        _check_same_base_weights(model, factors)
    named = dict(model.named_modules())
    for module in sorted(ref.modules):
        if module not in named:
            raise ValueError(
                f"Skill {ref.name!r} adapts {module!r}, which the model does not have: the skills were trained on a "
                "different architecture"
            )
        target = named[module]
        if isinstance(target, BaseTunerLayer):
            target = target.get_base_layer()
        if isinstance(target, nn.Linear):
            in_f, out_f = target.in_features, target.out_features
        elif type(target).__name__ == "Conv1D":
            in_f, out_f = target.weight.shape
        else:
            raise ValueError(f"Module {module!r} is a {type(target).__name__}; skills can only adapt nn.Linear layers")
        for f in factors:
            a, b = f.modules[module]
            if a.shape[1] != in_f or b.shape[0] != out_f:
                raise ValueError(
                    f"Skill {f.name!r} does not fit module {module!r}: its factors map {a.shape[1]} -> {b.shape[0]} "
                    f"features, the model's layer maps {in_f} -> {out_f}. It was trained on a different base model."
                )


def _check_same_base_weights(model: nn.Module, factors: list[SkillFactors]) -> None:
    """Refuse skills whose recorded base-weight fingerprint differs from the model's (or each other's); a differing
    base-model *name* alone only warns: one checkpoint has many names (a cache path here, a Hub id there)."""
    stamped = {f.name: f.base_fingerprint for f in factors if f.base_fingerprint}
    if stamped:
        actual = base_model_fingerprint(model, factors[0].modules)
        wrong = {name: fp for name, fp in stamped.items() if fp != actual}
        if wrong:
            names = {f.name: f.base_model_name_or_path for f in factors if f.name in wrong}
            raise ValueError(
                f"Skill(s) {sorted(wrong)} were trained on other base weights than this model's (weights fingerprint "
                f"{sorted(set(wrong.values()))} vs {actual}; trained on {names}). Load the skills' base model, or "
                "pass check_base_model=False if you really mean to mix them into these weights."
            )
    model_name = getattr(model, "name_or_path", None) or getattr(getattr(model, "config", None), "_name_or_path", None)
    unverified = {f.name: f.base_model_name_or_path for f in factors if not f.base_fingerprint}
    named = {n: b for n, b in unverified.items() if b and (not model_name or _norm(b) != _norm(model_name))}
    if named:
        warnings.warn(
            f"Skill(s) {sorted(named)} name another base model ({sorted(set(named.values()))}) than this model "
            f"({model_name!r}) and carry no weights fingerprint to check; they load because shapes match. If the "
            "weights differ, the skills will not do what they learned.",
            stacklevel=4,
        )


def _norm(name: str) -> str:
    return os.path.normpath(os.path.abspath(name)) if os.path.isdir(name) else name.rstrip("/")


def _short(items: list[str], n: int = 4) -> str:
    return str(items[:n])[:-1] + (f", ... {len(items) - n} more]" if len(items) > n else "]")
