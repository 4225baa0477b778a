"""Train one medical skill adapter with the stock `Trainer` (SA-MDKIF stage 1). Copy it and adapt it.

    python examples/train_skill.py --skill nli --output_dir runs/skills/nli [--peft_type lora] [--max_steps 20]

Data: `samdkif data build` (the skill's instruction records); model: the prepared SmolLM2 (`samdkif model prepare`).
Every other `TrainingArguments` flag works (`--learning_rate`, `--num_train_epochs`, `--per_device_train_batch_size`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from peft import LoraConfig, get_peft_model
from transformers import HfArgumentParser, Trainer, TrainingArguments

from samdkif_peft.base_model import load_base_model, prepare_base_model
from samdkif_peft.data import load_skill
from samdkif_peft.training import AdaLoraAllocateCallback, DataCollatorForCompletion, tokenize_dataset
from samdkif_peft.training.train_skill import DEFAULT_TARGET_MODULES, default_skill_config, estimate_total_steps


@dataclass
class SkillArguments:
    skill: str = field(default="nli", metadata={"help": "One of samdkif_peft.data.SKILLS."})
    peft_type: str = field(default="lora", metadata={"help": "'lora' (default) or 'adalora' (the paper)."})
    base_model: str | None = field(default=None, metadata={"help": "Default: the prepared SmolLM2."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Use the first N records."})
    max_length: int = field(default=256, metadata={"help": "Longest sequence; contexts are cut in the middle."})


def main() -> None:
    parser = HfArgumentParser((SkillArguments, TrainingArguments))
    args, training_args = parser.parse_args_into_dataclasses()
    base = args.base_model or prepare_base_model()
    model, tokenizer = load_base_model(base)
    data = load_skill(args.skill)
    train = data["train"]
    if args.max_train_samples:
        train = train.select(range(min(args.max_train_samples, len(train))))
    train = tokenize_dataset(train, tokenizer, args.max_length)
    validation = tokenize_dataset(data["validation"].select(range(64)), tokenizer, args.max_length)

    if args.peft_type == "lora":
        config = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.05, target_modules=list(DEFAULT_TARGET_MODULES),
                            task_type="CAUSAL_LM")  # fmt: skip
        callbacks = []
    else:
        config = default_skill_config(estimate_total_steps(training_args, len(train)))
        callbacks = [AdaLoraAllocateCallback()]  # the Trainer never runs AdaLoRA's rank allocation itself
    model = get_peft_model(model, config)
    model.peft_config["default"].base_model_name_or_path = str(base)  # the router checks skills share one base
    model.print_trainable_parameters()

    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=train,
        eval_dataset=validation,
        data_collator=DataCollatorForCompletion(tokenizer, max_length=args.max_length),
        callbacks=callbacks,
    )
    trainer.train()
    print({"eval_loss": trainer.evaluate()["eval_loss"]})
    model.save_pretrained(training_args.output_dir)  # adapter_config.json + adapter_model.safetensors


if __name__ == "__main__":
    torch.manual_seed(0)
    main()
