"""Router model cards: peft writes a generic card; we replace its boilerplate (or update our section in a card the
user has edited), and add tags so routers can be found on the Hub."""

from __future__ import annotations

import json
import math
import os
import re
from typing import Any

from huggingface_hub import ModelCard


TAGS = ("samdkif", "skill-router", "sa-mdkif")
_BEGIN, _END = "<!-- samdkif:skills -->", "<!-- /samdkif:skills -->"
_PEFT_BOILERPLATE = "# Model Card for Model ID"


def refresh_router_card(directory: str) -> None:
    """Make the card peft wrote next to a saved router ours, from the saved config and weights (no card: nothing)."""
    from peft.utils import CONFIG_NAME, SAFETENSORS_WEIGHTS_NAME
    from safetensors import safe_open

    config_file = os.path.join(directory, CONFIG_NAME)
    if not os.path.isfile(os.path.join(directory, "README.md")) or not os.path.isfile(config_file):
        return
    with open(config_file) as f:
        config = json.load(f)
    n_params = None
    weights = os.path.join(directory, SAFETENSORS_WEIGHTS_NAME)
    if os.path.isfile(weights):
        with safe_open(weights, framework="pt") as f:
            shapes = {k: f.get_slice(k).get_shape() for k in f.keys()}
        n_params = count_router_parameters(shapes, config.get("gate_scope") or "module")
    update_router_card(directory, config, n_params)


def count_router_parameters(shapes: dict[str, Any], gate_scope: str) -> int:
    """Trainable parameters of a saved router: a gate shared under `gate_scope` is saved under every module's key
    but counted once."""
    from ..tuner.model import gate_group

    counted = {}
    for key, shape in shapes.items():
        module, shared, param = key.partition(".skill_router_gate.")
        counted[(gate_group(module, gate_scope) if shared else key, param)] = math.prod(shape)
    return sum(counted.values())


def update_router_card(directory: str, config: dict[str, Any], n_router_params: int | None = None) -> None:
    """Write or refresh README.md in `directory` for a saved router (`config`: its adapter_config.json dict)."""
    import jinja2

    from hub_cards import template_path

    from ..tuner.router import get_router

    path = os.path.join(directory, "README.md")
    card = ModelCard.load(path) if os.path.isfile(path) else ModelCard("---\n---\n")
    tags = set(card.data.tags or []) | set(TAGS)
    card.data.tags = sorted(tags)
    skills = []
    for name in sorted(config["skills"]):
        pin = (config.get("skill_lock") or {}).get(name, {})
        where = pin.get("revision") or ("bundled" if pin.get("bundled") else "local path")
        skills.append(
            {
                "name": name,
                "reference": config["skills"][name],
                "peft_type": pin.get("peft_type", "?"),
                "revision": where[:12],
                "sha256": (pin.get("sha256") or "")[:16],
            }
        )
    text = jinja2.Template(template_path("skill_router").read_text(), trim_blocks=True).render(
        title=f"Skill router over {len(skills)} skills",
        skills=skills,
        base_model=config.get("base_model_name_or_path"),
        repo_hint="<this repo id>",
        router=config["router"],
        router_description=get_router(config["router"]).description,
        top_k=config.get("top_k"),
        temperature=config.get("temperature"),
        null_expert=config.get("null_expert"),
        gate_scope=config.get("gate_scope") or "module",
        task_rank=config.get("task_rank") or 0,
        task_alpha=config.get("task_alpha") or 2 * (config.get("task_rank") or 0),
        n_router_params=n_router_params if n_router_params is not None else "its",
        skills_begin=_BEGIN,
        skills_end=_END,
    )
    body = card.text
    if not body.strip() or _PEFT_BOILERPLATE in body:
        body = text
    elif _BEGIN in body and _END in body:
        section = text[text.index(_BEGIN) : text.index(_END) + len(_END)]
        body = re.sub(re.escape(_BEGIN) + ".*?" + re.escape(_END), lambda _: section, body, flags=re.S)
    else:
        body = body.rstrip() + "\n\n" + text[text.index(_BEGIN) : text.index(_END) + len(_END)] + "\n"
    card.text = body
    card.save(path)
