"""What a saved router's `adapter_config.json` holds beyond peft's: the skills as saved (`skills.bank`) and the
sha256 of the router weights written next to it, so a torn save cannot load as a silently wrong router.

`SkillRouterConfig.save_pretrained`/`from_pretrained` (the hooks peft calls) delegate here.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

from peft.utils import CONFIG_NAME, SAFETENSORS_WEIGHTS_NAME

from ..skills.bank import saved_skills
from ..utils import atomic_write_text, sha256_file


if TYPE_CHECKING:
    from .config import SkillRouterConfig


def write_config(config: SkillRouterConfig, save_directory: str, auto_mapping_dict: dict[str, Any] | None) -> None:
    """Write `adapter_config.json` atomically, after the weights (peft saves weights first).

    Records the sha256 of the router weights written next to it, and copies the skills in when `bundle_skills=True`.
    """
    if os.path.isfile(save_directory):
        raise ValueError(f"Provided path ({save_directory}) should be a directory, not a file")
    os.makedirs(save_directory, exist_ok=True)
    output = config.to_dict()
    weights = os.path.join(save_directory, SAFETENSORS_WEIGHTS_NAME)
    output["router_weights_sha256"] = sha256_file(weights) if os.path.isfile(weights) else None
    output["skills"], output["skill_lock"] = saved_skills(config, save_directory)
    for key, value in output.items():
        if isinstance(value, set):
            output[key] = sorted(value)
    if auto_mapping_dict is not None:
        output["auto_mapping"] = auto_mapping_dict
    atomic_write_text(os.path.join(save_directory, CONFIG_NAME), json.dumps(output, indent=2, sort_keys=True))


def verify_router_weights(config: SkillRouterConfig) -> None:
    """Compare the router weights next to a loaded config with the sha256 recorded when they were saved."""
    from ..skills.spec import fetch_file

    origin = config.origin
    if origin is None or not config.router_weights_sha256:
        return
    path = fetch_file(origin.path, SAFETENSORS_WEIGHTS_NAME, origin.subfolder, origin.revision)
    if path is None:
        return  # peft's own loader reports the missing file
    got = sha256_file(path)
    if got != config.router_weights_sha256:
        raise ValueError(
            f"Router weights at {origin.path!r} do not match its adapter_config.json (sha256 {got[:12]}..., "
            f"expected {config.router_weights_sha256[:12]}...): the save was interrupted or the file was replaced. "
            "Save the router again."
        )
