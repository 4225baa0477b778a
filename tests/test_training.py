"""AdaLoRA skills under the stock Trainer: the callback makes the rank budget actually shrink."""

from __future__ import annotations

import json

import pytest
import torch
from datasets import Dataset
from peft import AdaLoraConfig, LoraConfig, get_peft_model
from transformers import Trainer, TrainingArguments

from samdkif_peft.training import AdaLoraAllocateCallback

from .conftest import SKILL_TARGETS, VOCAB, load_base


def _data(n=16):
    torch.manual_seed(0)
    rows = [torch.randint(3, VOCAB, (8,)).tolist() for _ in range(n)]
    return Dataset.from_list([{"input_ids": r, "labels": r} for r in rows])


def _args(tmp_path, steps):
    return TrainingArguments(
        output_dir=str(tmp_path / "out"), max_steps=steps, per_device_train_batch_size=4, learning_rate=1e-2,
        report_to=[], use_cpu=True, save_strategy="no", disable_tqdm=True,
    )  # fmt: skip


def test_adalora_callback_prunes_to_budget(tiny_assets, tmp_path):
    config = AdaLoraConfig(init_r=6, target_r=2, total_step=1000, tinit=1, tfinal=1, deltaT=1,
                           target_modules=SKILL_TARGETS)  # fmt: skip
    model = get_peft_model(load_base(tiny_assets["base"]), config)
    Trainer(model=model, args=_args(tmp_path, 6), train_dataset=_data(), callbacks=[AdaLoraAllocateCallback()]).train()
    assert model.peft_config["default"].total_step == 6  # taken from the Trainer, not the config's guess
    model.save_pretrained(tmp_path / "skill")
    saved = json.loads((tmp_path / "skill" / "adapter_config.json").read_text())
    kept = [sum(mask) for mask in saved["rank_pattern"].values()]
    # the budget shrank from init_r to target_r per module; a module the allocator would empty keeps one slot
    assert len(kept) == 4 and min(kept) >= 1 and sum(kept) <= 2 * 4 + len(kept) < 6 * 4


def test_adalora_without_callback_is_not_pruned(tiny_assets, tmp_path):
    config = AdaLoraConfig(init_r=6, target_r=2, total_step=6, tinit=1, tfinal=1, target_modules=SKILL_TARGETS)
    model = get_peft_model(load_base(tiny_assets["base"]), config)
    Trainer(model=model, args=_args(tmp_path, 6), train_dataset=_data()).train()
    assert model.peft_config["default"].rank_pattern is None  # why the callback exists


def test_callback_rejects_non_adalora(tiny_assets, tmp_path):
    model = get_peft_model(load_base(tiny_assets["base"]), LoraConfig(target_modules=SKILL_TARGETS))
    trainer = Trainer(
        model=model, args=_args(tmp_path, 2), train_dataset=_data(), callbacks=[AdaLoraAllocateCallback()]
    )
    with pytest.raises(TypeError, match="needs a PeftModel wrapping an AdaLoRA adapter"):
        trainer.train()
