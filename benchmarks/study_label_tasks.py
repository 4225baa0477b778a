"""Every baseline on the closed-answer tasks, scored by option log-likelihood on all test records.

    python benchmarks/study_label_tasks.py --skills-dir SKILLS --tasks ddi_severity icd10cm_excludes_nli \
        [--variants base base_chat base_3shot uniform own_skill router hybrid task_lora task_adalora] \
        [--k 64] [--seed 42] [--out runs/study] [--json benchmarks/results/label_tasks.json]

Variants (same data, same steps, same seed for everything that trains):
- `base`, `base_chat`, `base_3shot`: the frozen LM with the project's template, with its own chat template, and with
  three training examples in front (the fair prompts a user would try first);
- `uniform`: all skills averaged (the untrained router); `own_skill`: the skill of the task's type alone;
- `router`: the sequence router (`train_router` defaults); `hybrid`: the router plus a rank-8 task LoRA trained
  jointly (`task_rank=8`); `hybrid_noskills`: that hybrid evaluated with the skills switched off
  (`force_skill_weights({})`: base + its task LoRA), the ablation that says whether the skills contribute;
  `task_lora`: a LoRA r8 on q,v trained on the task alone (what a user picks instead);
  `task_adalora`: the skills' AdaLoRA recipe (`train_skill` defaults) trained on the task.
Each result is cached in `<out>/k=<k>/seed=<seed>/<task>/<variant>[@tag].json` (predictions and option scores
included): rerunning resumes. `--tag` names a configuration (e.g. `--tag lr5e-3 --training-args '{"learning_rate":
5e-3}'`), so its results sit next to the defaults'.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import random
import time
from pathlib import Path

import torch

from samdkif_peft.data import TASKS, load_task
from samdkif_peft.data.templates import format_messages, format_prompt
from samdkif_peft.evaluation.likelihood import evaluate_options, paired_difference


RESULTS = Path(__file__).resolve().parent / "results"
VARIANTS = ("base", "base_chat", "base_3shot", "uniform", "own_skill", "router", "hybrid", "hybrid_noskills",
            "task_lora", "task_adalora")
TRAINED = ("router", "hybrid", "task_lora", "task_adalora")
logger = logging.getLogger("study")


def few_shot_prompt(train, n: int = 3, seed: int = 0):
    """Prompt function putting `n` training examples (one per label first, seeded) before the test prompt."""
    rng = random.Random(seed)
    pool = list(train)
    rng.shuffle(pool)
    shots, seen = [], set()
    for record in pool:  # one example per label first, so the prompt shows the label space
        if record["output"] not in seen and len(shots) < n:
            shots.append(record)
            seen.add(record["output"])
    shots += [r for r in pool if r not in shots][: n - len(shots)]
    prefix = "".join(format_prompt(r) + r["output"] + "\n\n" for r in shots)
    return lambda record: prefix + format_prompt(record)


def chat_prompt(tokenizer):
    def build(record):
        messages = format_messages(record)[:1]
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    return build


def subsample(dataset, k: int | None, seed: int):
    """The first k training records after a seeded shuffle (all of them when k is None); validation kept small."""
    from datasets import DatasetDict

    train = dataset["train"].shuffle(seed=seed)
    if k is not None:
        train = train.select(range(min(k, len(train))))
    return DatasetDict({"train": train, "validation": dataset["validation"], "test": dataset["test"]})


def train_variant(variant, task, data, skills, base, folder, args):
    variant = variant.split("@")[0]
    from samdkif_peft.training import train_router, train_skill

    common = dict(dataset=data, max_eval_samples=64, resume_from_checkpoint=True)
    overrides = {"seed": args.seed, "save_steps": 50, "eval_steps": 50, **json.loads(args.training_args)}
    if args.max_steps:
        overrides["max_steps"] = args.max_steps
    if variant in ("router", "hybrid"):
        extra = {"temperature": args.temperature, "task_rank": 0}
        if variant == "hybrid":
            extra = {"task_rank": args.task_rank, "task_learning_rate": args.task_learning_rate}
        return train_router(task, skills, base, folder, training_args=overrides, **extra, **common)
    if variant == "task_lora":  # LoRA r8, alpha 16, dropout 0.05 on q, v (`default_lora_config`)
        return train_skill(task, base, folder, peft_type="lora", training_args=overrides, **common)
    return train_skill(task, base, folder, peft_type="adalora", training_args=overrides, **common)  # the paper's


def load_variant(variant, task, skills, base, folder):
    variant = variant.split("@")[0]
    from peft import PeftModel, get_peft_model

    from samdkif_peft import SkillRouterConfig
    from samdkif_peft.base_model import load_base_model

    model, tokenizer = load_base_model(base)
    if variant.startswith("base"):
        return model, tokenizer
    if variant in ("uniform", "own_skill"):
        config = SkillRouterConfig(skills=skills, router="static", task_type="CAUSAL_LM")
        return get_peft_model(model, config), tokenizer
    return PeftModel.from_pretrained(model, folder), tokenizer


def run_variant(variant, task, skills, base, args, out: Path):
    from contextlib import nullcontext

    spec = TASKS[task]
    name, variant = variant, variant + (f"@{args.tag}" if args.tag else "")
    path = out / task / f"{variant}.json"
    if path.is_file():
        return json.loads(path.read_text())
    if name == "own_skill" and spec.skill_type not in skills:
        return None
    data = subsample(load_task(task), args.k, args.seed)
    folder = str(out / task / "adapters" / variant.replace("hybrid_noskills", "hybrid"))
    train_seconds = None
    if name in TRAINED:
        start = time.perf_counter()
        if not (Path(folder) / "train_results.json").is_file():
            train_variant(variant, task, data, skills, base, folder, args)
        train_seconds = time.perf_counter() - start
    model, tokenizer = load_variant(variant, task, skills, base, folder)
    prompt_fn = {"base_chat": chat_prompt(tokenizer), "base_3shot": few_shot_prompt(data["train"])}.get(name)
    forced = nullcontext()
    if name == "own_skill":
        forced = model.base_model.force_skill_weights({spec.skill_type: 1.0})
    elif name == "hybrid_noskills":
        if not (Path(folder) / "train_results.json").is_file():
            raise SystemExit(f"{variant}: train the hybrid first (it is evaluated from {folder})")
        forced = model.base_model.force_skill_weights({})
    with forced:
        result = evaluate_options(model, tokenizer, spec, data, limit=args.limit, prompt_fn=prompt_fn,
                                  batch_size=args.batch_size, progress=True)  # fmt: skip
    result.update(variant=variant, task=task, train_seconds=train_seconds, k=args.k, seed=args.seed, tag=args.tag,
                  training_args=json.loads(args.training_args))  # fmt: skip
    if name in ("router", "hybrid"):
        result["train_results"] = json.loads((Path(folder) / "train_results.json").read_text())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1))
    return result


def paired_comparisons(folder: Path) -> dict[str, dict]:
    """`hybrid[@tag] - task_lora[@tag]` for every tag both were run with, from the cached predictions."""
    results = {p.stem: json.loads(p.read_text()) for p in folder.glob("*.json")}
    pairs = {}
    for name, result in results.items():
        other = name.replace("hybrid", "task_lora", 1)
        if name.startswith("hybrid@") or name == "hybrid":
            if other in results:
                pairs[f"{name} - {other}"] = paired_difference(
                    result["predictions"], results[other]["predictions"], result["references"]
                )
    return pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skills-dir", required=True, help="folder of skill adapters, one sub-folder per skill")
    parser.add_argument("--tasks", nargs="+", default=["ddi_severity", "icd10cm_excludes_nli"])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--base-model", default=None, help="default: the prepared SmolLM2")
    parser.add_argument("--out", default="runs/study")
    parser.add_argument("--json", default=str(RESULTS / "label_tasks.json"))
    parser.add_argument("--k", type=int, default=None, help="training records per task (default: all)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--max-steps", type=int, default=0, help="0: one epoch")
    parser.add_argument("--task-rank", type=int, default=8, help="rank of the hybrid's task LoRA")
    parser.add_argument("--task-learning-rate", type=float, default=1e-3, help="the hybrid's task LoRA rate")
    parser.add_argument("--temperature", type=float, default=1.0, help="router softmax temperature")
    parser.add_argument("--training-args", default="{}", help="JSON overrides for every trained variant")
    parser.add_argument("--tag", default="", help="suffix of this configuration's variant names (variant@tag)")
    parser.add_argument("--limit", type=int, default=None, help="test records (default: all)")
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(os.cpu_count() or 1)

    from samdkif_peft.base_model import prepare_base_model

    base = str(Path(args.base_model or prepare_base_model()).resolve())
    folders = sorted(Path(args.skills_dir).iterdir())
    skills = {p.name: str(p.resolve()) for p in folders if (p / "adapter_config.json").is_file()}
    out = Path(args.out) / f"k={args.k or 'all'}" / f"seed={args.seed}"
    rows = {}
    for task in args.tasks:
        for variant in args.variants:
            result = run_variant(variant, task, skills, base, args, out)
            if result is None:
                continue
            report = result["report"]
            rows.setdefault(task, {})[result["variant"]] = {
                "accuracy": report["accuracy"], "macro_f1": report["macro_f1"], "intervals": report["intervals"],
                "accuracy_mean": report.get("accuracy_mean"), "prediction_counts": report["prediction_counts"],
                "n": result["n"], "train_seconds": result["train_seconds"], "eval_seconds": result["seconds"],
                "skills_dir": os.fspath(args.skills_dir),
            }  # fmt: skip
            rows[task]["_baselines"] = report["baselines"]
            print(f"{task:28s} {result['variant']:12s} acc={report['accuracy']:.3f} "
                  f"[{report['intervals']['accuracy'][0]:.3f}, {report['intervals']['accuracy'][1]:.3f}] "
                  f"macro-F1={report['macro_f1']:.3f} preds={report['prediction_counts']}", flush=True)  # fmt: skip
    for task in rows:  # hybrid vs task LoRA at the same rate, paired on the same test records
        rows[task]["_paired"] = paired_comparisons(out / task)
    # One JSON for every budget: runs["k=all"|"k=64"|...][task][variant]; other budgets' rows are kept.
    path = Path(args.json)
    payload = json.loads(path.read_text()) if path.is_file() else {}
    budget = payload.setdefault("runs", {}).setdefault(f"k={args.k or 'all'}, seed={args.seed}", {})
    for task, variants in rows.items():
        budget.setdefault(task, {}).update(variants)
    payload.update(seed=args.seed, skills_dir=os.fspath(args.skills_dir), scoring="option log-likelihood, sum",
                   machine={"cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads()})
    path.write_text(json.dumps(payload, indent=1) + "\n")

if __name__ == "__main__":
    main()
