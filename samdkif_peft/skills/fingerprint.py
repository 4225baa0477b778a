"""A cheap fingerprint of the base-model weights a skill was trained on, kept in the skill's safetensors metadata.

Names do not identify weights: the same SmolLM2 is `/root/.cache/.../SmolLM2-135M-Instruct` on one machine and
`org/smollm2` on another, and two different checkpoints can share a name. So a skill records a hash of a strided
sample of each adapted module's base weight (rounded to bfloat16, so an fp32 and a bf16 load of one checkpoint agree),
and a router compares that hash with the model it is mixed into. The metadata lives in `adapter_model.safetensors`
itself: no extra file to fetch, and the skill's sha256 pin covers it.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable

import torch


FINGERPRINT_KEY = "samdkif.base_model_fingerprint"
_SAMPLES_PER_MODULE = 64


def base_model_fingerprint(model: torch.nn.Module, modules: Iterable[str]) -> str:
    """sha256 (hex, first 16 chars) over the names, shapes and a strided bf16 sample of `modules`' base weights."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    named = dict(model.named_modules())
    digest = hashlib.sha256()
    for name in sorted(modules):
        module = named.get(name) or named.get(f"base_model.model.{name}")
        if module is None:
            raise ValueError(f"Cannot fingerprint module {name!r}: the model has no such module")
        if isinstance(module, BaseTunerLayer):
            module = module.get_base_layer()
        weight = module.weight.detach()
        flat = weight.reshape(-1)
        step = max(1, flat.numel() // _SAMPLES_PER_MODULE)
        sample = flat[::step][:_SAMPLES_PER_MODULE].to("cpu", torch.bfloat16).float()
        digest.update(f"{name}:{tuple(weight.shape)}:".encode())
        digest.update(sample.numpy().tobytes())
    return digest.hexdigest()[:16]


def read_fingerprint(weights_file: str | os.PathLike[str]) -> str | None:
    """The fingerprint stored in a skill's safetensors metadata, or None (skills trained outside samdkif_peft)."""
    if not os.fspath(weights_file).endswith(".safetensors"):
        return None
    from safetensors import safe_open

    with safe_open(os.fspath(weights_file), framework="pt") as f:
        return (f.metadata() or {}).get(FINGERPRINT_KEY)


def stamp_fingerprint(weights_file: str | os.PathLike[str], fingerprint: str) -> None:
    """Rewrite `weights_file` with the fingerprint in its metadata; the tensors stay bit-identical."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    path = os.fspath(weights_file)
    with safe_open(path, framework="pt") as f:
        metadata = dict(f.metadata() or {})
        tensors = {key: f.get_tensor(key) for key in f.keys()}
    metadata.setdefault("format", "pt")
    metadata[FINGERPRINT_KEY] = fingerprint
    tmp = f"{path}.tmp"
    save_file(tensors, tmp, metadata=metadata)
    os.replace(tmp, path)


def adapter_modules(weights_file: str | os.PathLike[str]) -> list[str]:
    """Module paths (relative to the base model) a saved LoRA/AdaLoRA adapter adapts, from its tensor names."""
    from safetensors import safe_open

    with safe_open(os.fspath(weights_file), framework="pt") as f:
        keys = list(f.keys())
    modules = {key.removeprefix("base_model.model.").split(".lora_", 1)[0] for key in keys if ".lora_" in key}
    return sorted(modules)


def stamp_skill(directory: str | os.PathLike[str], model: torch.nn.Module) -> str:
    """Fingerprint `model`'s weights under the modules the adapter in `directory` adapts and stamp it; returns it."""
    from peft.utils import SAFETENSORS_WEIGHTS_NAME

    weights = os.path.join(os.fspath(directory), SAFETENSORS_WEIGHTS_NAME)
    fingerprint = base_model_fingerprint(model, adapter_modules(weights))
    stamp_fingerprint(weights, fingerprint)
    return fingerprint
