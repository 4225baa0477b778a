"""The project's twelve released skills, and turning `--skills` arguments into a `{name: reference}` dict.

Released skills are Hub repos `samdkif/skill-<name>` (`samdkif skills release` builds them, `samdkif skills push`
uploads them). A repository checkout also carries them under `release/skills/skill-<name>/`, so the defaults work
offline without a Hub; `SAMDKIF_SKILLS_DIR` points at another folder of the same layout.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path


SKILL_REPO_PREFIX = "skill-"
HUB_NAMESPACE = "samdkif"
SKILLS_DIR_ENV = "SAMDKIF_SKILLS_DIR"
_CHECKOUT_RELEASE = Path(__file__).resolve().parents[2] / "release" / "skills"


def release_dir() -> Path | None:
    """The local folder of released skills: `$SAMDKIF_SKILLS_DIR`, else the checkout's `release/skills`, else None."""
    configured = os.environ.get(SKILLS_DIR_ENV)
    if configured:
        return Path(configured).expanduser()
    return _CHECKOUT_RELEASE if _CHECKOUT_RELEASE.is_dir() else None


def shipped_skills(names: Iterable[str] | None = None) -> dict[str, str]:
    """`{skill: reference}` for the released skills: the local release folder where it holds the skill, else the
    Hub repo `samdkif/skill-<name>`."""
    from samdkif_peft.data import SKILLS

    local = release_dir()
    out = {}
    for name in names or SKILLS:
        folder = local / f"{SKILL_REPO_PREFIX}{name}" if local else None
        if folder is not None and (folder / "adapter_config.json").is_file():
            out[name] = str(folder)
        else:
            out[name] = f"{HUB_NAMESPACE}/{SKILL_REPO_PREFIX}{name}"
    return out


def skill_name(reference: str) -> str:
    """`samdkif/skill-ner` -> `ner`, `./skills/skill-nli@v1` -> `nli`, `runs/skills/qa` -> `qa`."""
    base = reference.split("@", 1)[0].rstrip("/").rsplit("/", 1)[-1]
    return base[len(SKILL_REPO_PREFIX) :] if base.startswith(SKILL_REPO_PREFIX) else base


def parse_skill_arguments(arguments: Sequence[str] | None) -> dict[str, str]:
    """`--skills` entries -> `{name: reference}`; None or empty: the shipped skills.

    Each entry is `name=reference`, a Hub reference (`org/skill-ner[@rev]`), an adapter folder, or a folder of
    adapter folders (every subfolder holding `adapter_config.json` becomes a skill, named as `skill_name` says).
    """
    if not arguments:
        return shipped_skills()
    skills: dict[str, str] = {}
    for entry in arguments:
        name, sep, reference = entry.partition("=")
        if sep:
            found = {name.strip(): reference.strip()}
        elif os.path.isdir(entry) and not os.path.isfile(os.path.join(entry, "adapter_config.json")):
            found = {
                skill_name(str(sub)): str(sub)
                for sub in sorted(Path(entry).iterdir())
                if (sub / "adapter_config.json").is_file()
            }
            if not found:
                raise ValueError(
                    f"--skills {entry}: the folder holds no adapter (no adapter_config.json in it or its subfolders)"
                )
        else:
            found = {skill_name(entry): entry}
        for key in found:
            if key in skills:
                raise ValueError(f"--skills: two skills are named {key!r}; name them explicitly with NAME=REFERENCE")
        skills.update(found)
    return skills
