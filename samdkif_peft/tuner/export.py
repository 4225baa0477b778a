"""`export_lora`: a skill router as one ordinary peft LoRA, for servers and code that know nothing of this plugin.

No serving engine runs a trained router over a LoRA library, but every one serves LoRA adapters. With gates that do
not depend on the input (a mergeable router such as the static one, or any router's gates averaged over a task's
prompts), the mixed update
of a module is `Σ_i g_i B_i A_i + s B_t A_t`, which is exactly a LoRA of rank `Σ r_i (+ r_t)`:

    A = [A_1; ...; A_n; A_t]        B = [g_1 B_1, ..., g_n B_n, s B_t]

with every scale folded into B, so the exported config uses `lora_alpha = r` (scale 1) per module (`rank_pattern`,
`alpha_pattern`). Plain `PeftModel.from_pretrained(base, folder)` then computes what the router computes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

import torch


def export_lora(
    model: Any,
    output_dir: str | os.PathLike[str],
    *,
    prompts: Sequence[str] | None = None,
    tokenizer: Any = None,
    adapter_name: str | None = None,
    batch_size: int = 8,
    min_weight: float = 0.0,
) -> dict[str, Any]:
    """Write the router of `model` (a `PeftModel` with a skill router) as a peft LoRA in `output_dir`.

    Args:
        prompts: needed unless the router is mergeable: the gates each module uses, averaged over these prompts (e.g.
            the task's training prompts), become its fixed weights. A per-task average of an input-dependent router
            is an approximation; its exactness is reported back as `approximate=True`.
        tokenizer: tokenizes `prompts`.
        min_weight: leave out, per module, the skills whose fixed weight is below this (their rank slots), keeping at
            least that module's strongest skill. Trained routers put most weight on a few skills, so the LoRA
            shrinks from the sum of all skill ranks to a few (servers cap the rank: vLLM's `max_lora_rank`); the
            left-out weight is reported per module (`dropped_weight`) and makes the export `approximate`.

    Returns:
        `{"output_dir", "modules", "rank", "approximate", "dropped_weight", "gates"}` (`gates`: module -> the fixed
        skill weights; `dropped_weight`: module -> the weight of the skills `min_weight` left out).
    """
    from peft import LoraConfig
    from safetensors.torch import save_file

    from .layer import SkillRouterLayer
    from .router import get_router, mergeable_kinds

    if not 0.0 <= min_weight < 1.0:
        raise ValueError(f"min_weight must be in [0, 1) (a skill weight below which it is left out), got {min_weight}")

    base = model.base_model
    name = adapter_name or base._active_router()
    config = base.peft_config[name]
    layers = {k: m for k, m in base.model.named_modules() if isinstance(m, SkillRouterLayer) and name in m.skills_A}
    if get_router(config).mergeable:
        gates = {k: m._mergeable_gates(name) for k, m in layers.items()}
        approximate = False
    else:
        if not prompts or tokenizer is None:
            raise ValueError(
                f"router={config.router!r} chooses skills per input; pass prompts= and tokenizer= (CLI: --prompts "
                f"task records) to fold in its gates averaged over a task's prompts, or export a router with "
                f"{mergeable_kinds()}"
            )
        averaged = base.mean_routing_weights(tokenizer, prompts, batch_size=batch_size, adapter_name=name)
        gates = {key: averaged[key].to(layers[key].skills_A[name].device) for key in layers}
        approximate = True
    tensors, ranks, dropped = {}, {}, {}
    for key, layer in layers.items():
        weights = gates[key].float().reshape(-1)
        slot_w = weights.index_select(-1, layer.skill_slots[name])
        skill_w = weights[: len(config.skill_names)]  # (a null expert's weight, if any, comes last)
        cut = min(min_weight, float(skill_w.max()))  # the strongest skill always stays
        keep = slot_w >= cut
        dropped[key] = round(float(skill_w[skill_w < cut].sum()), 6)
        a = layer.skills_A[name].float()[keep]
        b = (layer.skills_B[name].float() * slot_w)[:, keep]
        if name in layer.skill_router_task_A:
            a = torch.cat([a, layer.skill_router_task_A[name].weight.detach().float()], dim=0)
            task_b = layer.skill_router_task_B[name].weight.detach().float() * layer.task_scale[name]
            b = torch.cat([b, task_b], dim=1)
        if getattr(layer, "fan_in_fan_out", False):
            raise ValueError(f"Module {key!r} uses fan_in_fan_out weights; exporting those is not supported")
        tensors[f"base_model.model.{key}.lora_A.weight"] = a.contiguous()
        tensors[f"base_model.model.{key}.lora_B.weight"] = b.contiguous()
        ranks[key] = a.shape[0]
    top = max(ranks.values())
    lora = LoraConfig(
        r=top,
        lora_alpha=top,
        target_modules=sorted({k.rsplit(".", 1)[-1] for k in layers}),
        rank_pattern={k: r for k, r in ranks.items() if r != top},
        alpha_pattern={k: r for k, r in ranks.items() if r != top},  # alpha = r: scale 1, every scale is in B
        task_type=config.task_type,
        base_model_name_or_path=config.base_model_name_or_path,
        inference_mode=True,
    )
    os.makedirs(output_dir, exist_ok=True)
    save_file(tensors, os.path.join(output_dir, "adapter_model.safetensors"), metadata={"format": "pt"})
    lora.save_pretrained(os.fspath(output_dir))
    summary = {
        "output_dir": os.fspath(output_dir),
        "modules": len(layers),
        "rank": ranks,
        "approximate": approximate or any(v > 0 for v in dropped.values()),
        "dropped_weight": dropped,
        "router": config.router,
        "skills": list(config.skill_names),
        "gates": {k: [round(float(v), 6) for v in g.flatten().tolist()] for k, g in gates.items()},
    }
    with open(os.path.join(output_dir, "samdkif_export.json"), "w") as f:
        json.dump(summary, f, indent=1)
    return summary
