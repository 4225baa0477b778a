"""Quickstart: train two skills and a skill router with the stock Trainer, end to end, in about a minute on a CPU.

A tiny Llama is pre-trained from scratch on two toy "skills" (copy and reverse a short sequence); each skill is then
sharpened as its own adapter (one LoRA, one AdaLoRA with rank allocation), and a SKILL_ROUTER learns, from the prompt
alone, which skill a request needs. Everything SA-MDKIF does with 12 medical skills on SmolLM2, in miniature:

    python examples/quickstart.py --out runs/quickstart

It prints exact-match accuracy of the base model, each skill alone, their uniform average, and the trained router
on held-out prompts, then saves the router, reloads it with `AutoPeftModelForCausalLM`, and checks the outputs match.
"""

from __future__ import annotations

import argparse
import json
import os
import random

import torch
from datasets import Dataset
from peft import AdaLoraConfig, AutoPeftModelForCausalLM, LoraConfig, get_peft_model
from transformers import LlamaConfig, LlamaForCausalLM, Trainer, TrainingArguments, logging

import samdkif_peft  # noqa: F401  (registers SKILL_ROUTER with peft)
from samdkif_peft import SkillRouterConfig
from samdkif_peft.training import AdaLoraAllocateCallback


PAD, SEP, COPY, REVERSE, FIRST_SYMBOL = 0, 1, 2, 3, 4
N_SYMBOLS, LENGTH = 12, 4
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def example(task: int, rng: random.Random) -> dict:
    xs = [rng.randrange(FIRST_SYMBOL, FIRST_SYMBOL + N_SYMBOLS) for _ in range(LENGTH)]
    answer = xs if task == COPY else xs[::-1]
    prompt = [task, *xs, SEP]
    return {"input_ids": prompt + answer, "labels": [-100] * len(prompt) + answer, "n_prompt": len(prompt)}


def dataset(tasks: list[int], n: int, seed: int) -> Dataset:
    rng = random.Random(seed)
    return Dataset.from_list([example(rng.choice(tasks), rng) for _ in range(n)])


def train(model, data: Dataset, out: str, steps: int, lr: float, callbacks=()) -> None:
    args = TrainingArguments(
        output_dir=out, max_steps=steps, per_device_train_batch_size=32, learning_rate=lr, lr_scheduler_type="cosine",
        warmup_steps=steps // 10, logging_steps=max(1, steps // 5), save_strategy="no", report_to=[], use_cpu=True,
        seed=0, disable_tqdm=True,
    )  # fmt: skip
    Trainer(model=model, args=args, train_dataset=data, callbacks=list(callbacks)).train()


@torch.no_grad()
def exact_match(model, data: Dataset) -> float:
    model.eval()
    prompts = torch.tensor([r["input_ids"][: r["n_prompt"]] for r in data])
    answers = torch.tensor([r["input_ids"][r["n_prompt"] :] for r in data])
    out = model.generate(input_ids=prompts, attention_mask=torch.ones_like(prompts), max_new_tokens=LENGTH,
                         do_sample=False, pad_token_id=PAD)  # fmt: skip
    return (out[:, prompts.shape[1] :] == answers).all(dim=1).float().mean().item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/quickstart")
    parser.add_argument("--steps", type=int, default=300, help="base pre-training steps (skills and router: less)")
    args = parser.parse_args()
    logging.set_verbosity_error()
    torch.manual_seed(0)
    os.makedirs(args.out, exist_ok=True)

    # 1. A tiny base model that half-knows both skills (a stand-in for a general-purpose LLM).
    config = LlamaConfig(vocab_size=FIRST_SYMBOL + N_SYMBOLS, hidden_size=64, intermediate_size=128,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, pad_token_id=PAD,
                         bos_token_id=SEP, eos_token_id=SEP)  # fmt: skip
    base_dir = os.path.join(args.out, "base")
    base = LlamaForCausalLM(config)
    train(base, dataset([COPY, REVERSE], 4000, seed=1), os.path.join(args.out, "tmp"), args.steps // 3, 3e-3)
    base.save_pretrained(base_dir)

    # 2. Skill training: one adapter per skill, each on its own data (LoRA and AdaLoRA, different ranks).
    skills = {"copy": os.path.join(args.out, "skill-copy"), "reverse": os.path.join(args.out, "skill-reverse")}
    copy = get_peft_model(LlamaForCausalLM.from_pretrained(base_dir), LoraConfig(r=8, target_modules=TARGETS))
    train(copy, dataset([COPY], 4000, seed=2), os.path.join(args.out, "tmp"), args.steps, 1e-2)
    copy.save_pretrained(skills["copy"])
    ada = AdaLoraConfig(init_r=12, target_r=6, total_step=args.steps, tinit=args.steps // 10,
                        tfinal=args.steps // 5, lora_alpha=16, target_modules=TARGETS)  # fmt: skip
    reverse = get_peft_model(LlamaForCausalLM.from_pretrained(base_dir), ada)
    train(reverse, dataset([REVERSE], 4000, seed=3), os.path.join(args.out, "tmp"), args.steps, 1e-2,
          callbacks=[AdaLoraAllocateCallback()])  # fmt: skip
    reverse.save_pretrained(skills["reverse"])

    # 3. Skill adaptation: a sequence router over the frozen skills, trained on the mixed downstream task.
    router = get_peft_model(
        LlamaForCausalLM.from_pretrained(base_dir),
        SkillRouterConfig(skills=skills, router="sequence", task_type="CAUSAL_LM"),
    )
    router.print_trainable_parameters()
    test = dataset([COPY, REVERSE], 400, seed=4)
    results = {"base model": exact_match(LlamaForCausalLM.from_pretrained(base_dir), test)}
    for name in skills:
        with router.base_model.force_skill_weights({name: 1.0}):
            results[f"skill '{name}' alone"] = exact_match(router, test)
    results["uniform average (untrained router)"] = exact_match(router, test)
    train(router, dataset([COPY, REVERSE], 2000, seed=5), os.path.join(args.out, "tmp"), args.steps // 3, 5e-2)
    results["trained skill router"] = exact_match(router, test)

    router_dir = os.path.join(args.out, "router")
    router.save_pretrained(router_dir)
    reloaded = AutoPeftModelForCausalLM.from_pretrained(router_dir)
    reload_ok = exact_match(reloaded, test) == results["trained skill router"]

    print("\nheld-out exact match (400 prompts, half copy / half reverse)")
    for name, value in results.items():
        print(f"  {name:<38} {value:6.1%}")
    print(f"router weights on the last batch: {json.dumps(router.base_model.routing_summary())}")
    verdict = "identical" if reload_ok else "DIFFERENT"
    print(f"saved to {router_dir}; reloaded with AutoPeftModelForCausalLM: {verdict}")
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump({"exact_match": results, "reload_identical": reload_ok}, f, indent=2)
    if not reload_ok:
        raise SystemExit("reloaded router disagrees with the trained one")


if __name__ == "__main__":
    main()
