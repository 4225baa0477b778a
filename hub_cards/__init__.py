"""Model-card templates for the Hub artifacts samdkif_peft writes (routers; skills and datasets follow)."""

from __future__ import annotations

from pathlib import Path


TEMPLATES = Path(__file__).parent


def template_path(name: str) -> Path:
    path = TEMPLATES / f"{name}.md"
    if not path.is_file():
        raise FileNotFoundError(
            f"No card template {name!r}; available: {sorted(p.stem for p in TEMPLATES.glob('*.md'))}"
        )
    return path
