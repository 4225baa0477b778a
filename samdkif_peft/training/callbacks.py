"""`AdaLoraAllocateCallback`: AdaLoRA's rank allocation under the stock `Trainer` (docs/peft-internals.md §4.2).

The Trainer never calls `update_and_allocate`, so without this an AdaLoRA skill is never pruned. Like peft's
`AdamssAsaCallback`, it acts in `on_optimizer_step`, after `optimizer.step()` and while the gradients still exist.
"""

from __future__ import annotations

from transformers import TrainerCallback


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


def _adalora_config(model):
    base = getattr(model, "base_model", None)
    if base is None or not hasattr(base, "update_and_allocate"):
        raise TypeError("AdaLoraAllocateCallback needs a PeftModel wrapping an AdaLoRA adapter (get_peft_model)")
    return base.peft_config[base.trainable_adapter_name]
