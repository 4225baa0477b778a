"""Skills: where a skill adapter lives (spec) and how it is normalised into canonical factors (loading)."""

from .loading import SkillFactors, load_skill_factors
from .spec import ResolvedSkill, SkillReference, parse_skill_reference, resolve_skill


__all__ = [
    "ResolvedSkill",
    "SkillFactors",
    "SkillReference",
    "load_skill_factors",
    "parse_skill_reference",
    "resolve_skill",
]
