"""Skills: where a skill adapter lives (spec), its canonical factors (factors) and a router's skill bank (bank)."""

from .factors import SkillFactors, load_skill_factors
from .spec import ResolvedSkill, SkillReference, parse_skill_reference, resolve_skill


__all__ = [
    "ResolvedSkill",
    "SkillFactors",
    "SkillReference",
    "load_skill_factors",
    "parse_skill_reference",
    "resolve_skill",
]
