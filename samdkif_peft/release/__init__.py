"""The project's released artifacts: the twelve skills as Hub adapter repos (`release_skills`, `push_skills`;
CLI `samdkif skills release|push`)."""

from .skills import SKILL_SIZE_LIMIT, push_skills, release_skills


__all__ = ["SKILL_SIZE_LIMIT", "push_skills", "release_skills"]
