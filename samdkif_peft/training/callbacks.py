"""`AdaLoraAllocateCallback`: AdaLoRA's rank allocation under the stock `Trainer` (docs/PEFT_INTERNALS.md §4.2).

The Trainer never calls `update_and_allocate`, so without this an AdaLoRA skill is never pruned. Like peft's
`AdamssAsaCallback`, it acts in `on_optimizer_step`, after `optimizer.step()` and while the gradients still exist.
"""

from __future__ import annotations

import json
import os

from safetensors import safe_open
from safetensors.torch import save_file
from transformers import TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR


ADALORA_STATE_NAME = "adalora_state.safetensors"  # rank pattern (metadata) and the allocator's averages
_ALLOCATOR_STATE = ("ipt", "exp_avg_ipt", "exp_avg_unc")


class AdaLoraAllocateCallback(TrainerCallback):
    def on_train_begin(self, args, state, control, model=None, **kwargs):
        config = _adalora_config(model)
        # AdaLoRA's budget schedule is defined over `total_step`; the Trainer knows the real number only now.
        if config.total_step != state.max_steps:
            if not config.tinit < state.max_steps - config.tfinal:
                raise ValueError(
                    f"AdaLoRA needs tinit < total_step - tfinal, got tinit={config.tinit}, tfinal={config.tfinal} for "
                    f"{state.max_steps} training steps; lower tinit/tfinal or train longer"
                )
            config.total_step = state.max_steps
            model.base_model.rankallocator.set_total_step(state.max_steps)

    def on_optimizer_step(self, args, state, control, model=None, **kwargs):
        model.base_model.update_and_allocate(state.global_step)
        keep_rank_one(_adalora_config(model))


def keep_rank_one(config) -> None:
    """Give every module at least one rank slot in the final AdaLoRA `rank_pattern`.

    A module pruned to rank 0 is saved as `(0, in)` / `(out, 0)` tensors, which peft's save takes for an unsharded
    DeepSpeed ZeRO-3 / FSDP export and warns about. Keeping its first triplet costs one row and, while its singular
    value is still zero, computes exactly what rank 0 does; it may train on in the remaining steps.
    """
    for mask in (config.rank_pattern or {}).values():
        if mask and not any(mask):
            mask[0] = True


def _adalora_config(model):
    base = getattr(model, "base_model", None)
    if base is None or not hasattr(base, "update_and_allocate"):
        raise TypeError("AdaLoraAllocateCallback needs a PeftModel wrapping an AdaLoRA adapter (get_peft_model)")
    return base.peft_config[base.trainable_adapter_name]


class AdaLoraCheckpointCallback(TrainerCallback):
    """
    Makes AdaLoRA checkpoints resumable under the stock `Trainer` (`resume_from_checkpoint`).

    peft saves an AdaLoRA adapter pruned to its current `rank_pattern`, so every checkpoint written after the first
    allocation (step `tinit`) no longer fits the full-rank model the Trainer resumes into ("size mismatch for
    ...lora_E"), and the rank pattern and the allocator's importance averages are not saved at all. On each save
    this rewrites the checkpoint's adapter at full rank (pruned triplets are zero, so it computes the same) and
    stores the rank pattern and the allocator state next to it; on resume it restores both, so training continues
    as if it had never stopped.

    Args:
        resume_from_checkpoint (`str`, *optional*):
            The checkpoint being resumed; defaults to `<output_dir>/checkpoint-<global_step>` of the restored state.
    """

    def __init__(self, resume_from_checkpoint: str | None = None):
        self.resume_from_checkpoint = resume_from_checkpoint

    def on_save(self, args, state, control, model=None, **kwargs):
        folder = os.path.join(args.output_dir, f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}")
        if not os.path.isdir(folder):
            return
        config = _adalora_config(model)
        rank_pattern, config.rank_pattern = config.rank_pattern, None
        try:
            model.save_pretrained(folder)  # no rank_pattern: peft keeps every triplet
        finally:
            config.rank_pattern = rank_pattern
        allocator = model.base_model.rankallocator
        tensors = {
            f"{kind}/{name}": value.detach().contiguous().cpu()
            for kind in _ALLOCATOR_STATE
            for name, value in getattr(allocator, kind).items()
        }
        save_file(
            tensors, os.path.join(folder, ADALORA_STATE_NAME), metadata={"rank_pattern": json.dumps(rank_pattern)}
        )

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if state.global_step == 0:
            return
        folder = self.resume_from_checkpoint or os.path.join(
            args.output_dir, f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"
        )
        path = os.path.join(folder, ADALORA_STATE_NAME)
        if not os.path.isfile(path):
            return  # saved without this callback: the Trainer's own load has already succeeded or failed
        config = _adalora_config(model)
        allocator = model.base_model.rankallocator
        with safe_open(path, framework="pt") as f:
            config.rank_pattern = json.loads(f.metadata()["rank_pattern"])
            for kind in _ALLOCATOR_STATE:
                getattr(allocator, kind).clear()
            device = next(p.device for p in model.parameters())
            for key in f.keys():
                kind, name = key.split("/", 1)
                getattr(allocator, kind)[name] = f.get_tensor(key).to(device)
