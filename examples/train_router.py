"""Train a skill router (or the hybrid: router + task LoRA) for one task with the stock `Trainer` (SA-MDKIF stage 2).

    python examples/train_router.py --task ddi_severity --skills_dir runs/skills --output_dir runs/routers/ddi \
        [--task_rank 8] [--router sequence] [--skill_prior_records 64] [--max_steps 20] [--learning_rate 5e-3]

Only the router (and the hybrid's task LoRA) trains; base model and skills stay frozen. Before training, the router
starts from the skill prior (each skill's loss on the first records) where one skill fits the task clearly better
than the uniform mix, as `train_router` does by default (docs/DEFAULTS.md); `--skill_prior_records 0`: uniform.
The saved folder loads with `PeftModel.from_pretrained(base, folder)` or
`AutoPeftModelForCausalLM.from_pretrained(folder)` after `import samdkif_peft`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from peft import get_peft_model
from transformers import HfArgumentParser, Trainer, TrainingArguments

import samdkif_peft  # noqa: F401  (registers SKILL_ROUTER with peft)
from samdkif_peft import SkillRouterConfig
from samdkif_peft.base_model import load_base_model, prepare_base_model
from samdkif_peft.data import load_task
from samdkif_peft.training import (
    DEFAULT_SKILL_PRIOR_RECORDS,
    ROUTER_TRAINING_DEFAULTS,
    DataCollatorForCompletion,
    router_training_defaults,
    skill_prior,
    tokenize_dataset,
)
from samdkif_peft.tuner.router import describe_routers


@dataclass
class RouterArguments:
    task: str = field(default="ddi_severity", metadata={"help": "One of samdkif_peft.data.TASKS."})
    skills_dir: str = field(default="runs/skills", metadata={"help": "Skill adapters, one per sub-folder."})
    router: str = field(default="sequence", metadata={"help": f"Router kind: {describe_routers()}."})
    task_rank: int = field(default=0, metadata={"help": "Hybrid: rank of a jointly trained task LoRA (0: off)."})
    gate_scope: str | None = field(
        default=None,
        metadata={
            "help": "Modules sharing one gate: module, layer or model (default: model for a sequence or static "
            "router alone, module for the hybrid and the token router)."
        },
    )
    base_model: str | None = field(default=None, metadata={"help": "Default: the prepared SmolLM2."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Use the first N records."})
    max_length: int = field(default=384, metadata={"help": "Longest sequence (the Elixhauser prompt is ~300)."})
    skill_prior_records: int = field(
        default=DEFAULT_SKILL_PRIOR_RECORDS,
        metadata={"help": "Start from the skills' losses on this many records where one fits (0: uniform start)."},
    )


def main() -> None:
    parser = HfArgumentParser((RouterArguments, TrainingArguments))
    # TrainingArguments' own rate (5e-5) is 100x below the rate the routers were measured at: default to the rate
    # `train_router` uses (5e-3; a static router alone: its kind's 0.1). An explicit --learning_rate wins.
    known, _ = parser.parse_known_args()
    # (one rate for everything here, so the hybrid's router and task LoRA both take the router rate, 5e-3)
    rate = ROUTER_TRAINING_DEFAULTS if known.task_rank else router_training_defaults(known.router)
    parser.set_defaults(learning_rate=rate["learning_rate"])
    args, training_args = parser.parse_args_into_dataclasses()
    skills = {p.name: str(p) for p in sorted(Path(args.skills_dir).iterdir()) if (p / "adapter_config.json").is_file()}
    if not skills:
        raise SystemExit(f"No skill adapters in {args.skills_dir!r}; train some with examples/train_skill.py")
    model, tokenizer = load_base_model(args.base_model or prepare_base_model())
    data = load_task(args.task)
    train = data["train"]
    if args.max_train_samples:
        train = train.select(range(min(args.max_train_samples, len(train))))
    config = SkillRouterConfig(skills=skills, router=args.router, task_rank=args.task_rank, task_type="CAUSAL_LM",
                               gate_scope=args.gate_scope)  # fmt: skip
    model = get_peft_model(model, config)
    model.print_trainable_parameters()
    train = tokenize_dataset(train, tokenizer, args.max_length)
    if args.skill_prior_records:
        prior = skill_prior(model, config.skill_names, tokenizer, train, args.skill_prior_records, args.max_length)
        if prior["weights"] is not None:  # None: no skill fits better than the uniform mix; keep the uniform start
            model.base_model.set_routing_prior(prior["weights"])
    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=train,
        data_collator=DataCollatorForCompletion(tokenizer, max_length=args.max_length),
    )
    trainer.train()
    model.save_pretrained(training_args.output_dir)
    print({"routing": {k: round(v, 3) for k, v in model.base_model.routing_summary().items()}})


if __name__ == "__main__":
    main()
