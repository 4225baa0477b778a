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
  `task_adalora`: the skills' AdaLoRA recipe (`train_skill` defaults) trained on the task;
- `router_token`, `router_static`: the other router kinds, trained like `router`;
- `lorahub`: fixed skill weights fitted without gradients on 32 training records (`fit_skill_weights`, LoRAHub's
  budget 40 and L1 0.05); `xlora`: peft's X-LoRA over the same skills, its classifier trained with the router's
  defaults (rate 5e-3, same steps).
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
from collections import Counter
from pathlib import Path

import torch

from samdkif_peft.data import TASKS, load_task
from samdkif_peft.data.templates import format_messages, format_prompt
from samdkif_peft.evaluation.likelihood import evaluate_options, paired_difference, scoreable


RESULTS = Path(__file__).resolve().parent / "results"
VARIANTS = ("base", "base_chat", "base_3shot", "uniform", "own_skill", "lorahub", "router", "router_token",
            "router_static", "xlora", "hybrid", "hybrid_noskills", "task_lora", "task_adalora")
TRAINED = ("router", "router_token", "router_static", "xlora", "hybrid", "task_lora", "task_adalora")
ROUTER_KINDS = {"router": "sequence", "router_token": "token", "router_static": "static", "hybrid": "sequence"}
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

    common = dict(dataset=data, max_eval_samples=64, resume_from_checkpoint=True, balance_labels=args.balance_labels)
    overrides = {"seed": args.seed, "save_steps": 50, "eval_steps": 50, **json.loads(args.training_args)}
    if args.max_steps:
        overrides["max_steps"] = args.max_steps
    if variant in ROUTER_KINDS:
        extra = {"temperature": args.temperature, "task_rank": 0}
        if variant == "hybrid":
            extra = {"task_rank": args.task_rank, "task_learning_rate": args.task_learning_rate}
        return train_router(task, skills, base, folder, router=ROUTER_KINDS[variant], training_args=overrides,
                            **extra, **common)  # fmt: skip
    if variant == "xlora":
        return train_xlora(task, data, skills, base, folder, overrides, args.balance_labels)
    if variant == "task_lora":  # LoRA r8, alpha 16, dropout 0.05 on q, v (`default_lora_config`)
        return train_skill(task, base, folder, peft_type="lora", training_args=overrides, **common)
    return train_skill(task, base, folder, peft_type="adalora", training_args=overrides, **common)  # the paper's


def train_xlora(task, data, skills, base, folder, overrides, balance_labels):
    """peft's X-LoRA over the same skills: its classifier trained with the router's defaults on the same data."""
    from peft import XLoraConfig, get_peft_model

    from samdkif_peft.training.common import (
        DEFAULT_ROUTER_MAX_LENGTH,
        ROUTER_TRAINING_DEFAULTS,
        build_training_arguments,
        fit_and_save,
        load_model_and_tokenizer,
        prepare_splits,
        write_results,
    )

    model, tokenizer = load_model_and_tokenizer(base, "bfloat16")
    model.config.use_cache = False  # X-LoRA runs a scaling pass before each forward; peft requires no KV cache
    train, evaluation = prepare_splits(data, tokenizer, DEFAULT_ROUTER_MAX_LENGTH, None, 64, balance_labels,
                                       overrides["seed"])  # fmt: skip
    args = build_training_arguments(folder, overrides, ROUTER_TRAINING_DEFAULTS, bf16=True,
                                    has_eval=evaluation is not None)  # fmt: skip
    # X-LoRA names the adapters it loads "0", "1", ... (other keys break its scaling pass); the order is the skills'
    adapters = {str(i): path for i, path in enumerate(skills.values())}
    config = XLoraConfig(task_type="CAUSAL_LM", hidden_size=model.config.hidden_size, adapters=adapters)
    model = get_peft_model(model, config)
    _, summary = fit_and_save(model, tokenizer, args, train, evaluation, folder,
                              max_length=DEFAULT_ROUTER_MAX_LENGTH, checkpoint=None, callbacks=[])  # fmt: skip
    write_results(folder, {"task": task, "peft_type": "XLORA", **summary})
    return folder


def load_variant(variant, task, skills, base, folder):
    variant = variant.split("@")[0]
    from peft import PeftModel, get_peft_model

    from samdkif_peft import SkillRouterConfig
    from samdkif_peft.base_model import load_base_model

    model, tokenizer = load_base_model(base, use_cache=variant != "xlora")
    if variant.startswith("base"):
        return model, tokenizer
    if variant in ("uniform", "own_skill", "lorahub"):
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
    fitted = None
    if name == "own_skill":
        forced = model.base_model.force_skill_weights({spec.skill_type: 1.0})
    elif name == "lorahub":
        from samdkif_peft.training import fit_skill_weights

        start = time.perf_counter()
        fit = fit_skill_weights(model, tokenizer, list(data["train"].select(range(min(32, len(data["train"]))))),
                                budget=args.lorahub_budget, seed=args.seed, progress=True)  # fmt: skip
        train_seconds = time.perf_counter() - start
        fitted = {"weights": fit.weights, "loss": fit.loss, "initial_loss": fit.initial_loss}
        forced = model.base_model.force_skill_weights(fit.weights)
    elif name == "hybrid_noskills":
        if not (Path(folder) / "train_results.json").is_file():
            raise SystemExit(f"{variant}: train the hybrid first (it is evaluated from {folder})")
        forced = model.base_model.force_skill_weights({})
    with forced:
        if scoreable(spec):
            result = evaluate_options(model, tokenizer, spec, data, limit=args.limit, prompt_fn=prompt_fn,
                                      batch_size=args.batch_size, progress=True)  # fmt: skip
        else:
            result = evaluate_generated(model, tokenizer, spec, data, args, prompt_fn)
    result.update(variant=variant, task=task, train_seconds=train_seconds, k=args.k, seed=args.seed, tag=args.tag,
                  training_args=json.loads(args.training_args))  # fmt: skip
    if fitted:
        result["fitted"] = fitted
    if name in ROUTER_KINDS or name == "xlora":
        result["train_results"] = json.loads((Path(folder) / "train_results.json").read_text())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1))
    return result


def evaluate_generated(model, tokenizer, spec, data, args, prompt_fn):
    """Open-answer tasks (Elixhauser's flag sets): generate, then micro-F1 and subset accuracy with bootstrap
    intervals over records (each record's true/false positives and negatives are resampled together)."""
    import numpy as np

    from samdkif_peft.evaluation.generation import evaluate_task
    from samdkif_peft.evaluation.likelihood import _percentile_interval
    from samdkif_peft.evaluation.parsing import parse_label_set

    if prompt_fn is not None or spec.output_format != "label_set":
        raise SystemExit(f"{spec.name}: only label-set tasks are scored by generation here, with the project template")
    result = evaluate_task(model, tokenizer, spec, data, limit=args.limit, batch_size=args.batch_size, progress=True)
    test = data["test"] if args.limit is None else data["test"].select(range(min(args.limit, len(data["test"]))))
    predicted = [set(parse_label_set(p, spec.separator)) for p in result["predictions"]]
    reference = [set(parse_label_set(r, spec.separator)) for r in test["output"]]
    counts = np.array([(len(p & r), len(p - r), len(r - p), p == r) for p, r in zip(predicted, reference)], float)

    def scores(c):
        tp, fp, fn = c[:, 0].sum(), c[:, 1].sum(), c[:, 2].sum()
        return {"micro_f1": 2 * tp / (2 * tp + fp + fn) if tp else 0.0, "exact_match": float(c[:, 3].mean())}

    rng = np.random.default_rng(0)
    samples = [scores(counts[rng.integers(0, len(counts), len(counts))]) for _ in range(1000)]
    train_sets = Counter(tuple(sorted(parse_label_set(o, spec.separator))) for o in data["train"]["output"])
    majority = set(train_sets.most_common(1)[0][0])
    majority_counts = np.array([(len(majority & r), len(majority - r), len(r - majority), majority == r)
                                for r in reference], float)  # fmt: skip
    shown = Counter(spec.separator.join(sorted(p)) or "none" for p in predicted)
    result["report"] = {
        **scores(counts), "metric_names": ["micro_f1", "exact_match"],
        "intervals": {k: _percentile_interval([x[k] for x in samples], 0.95) for k in ("micro_f1", "exact_match")},
        "prediction_counts": dict(shown.most_common(8)), "distinct_predictions": len(shown),
        "baselines": {"majority": {"label": spec.separator.join(sorted(majority)), **scores(majority_counts)}},
    }  # fmt: skip
    result["references"] = list(test["output"])
    return result


def paired_comparisons(folder: Path) -> dict[str, dict]:
    """`hybrid[@tag] - task_lora[@tag]` (against what a user picks instead) and `hybrid[@tag] -
    hybrid_noskills[@tag]` (what the skills add inside the hybrid) for every tag both were run with, from the cached
    predictions."""
    results = {p.stem: json.loads(p.read_text()) for p in folder.glob("*.json")}
    pairs = {}
    for name, result in results.items():
        if not (name.startswith("hybrid@") or name == "hybrid"):
            continue
        for other in (name.replace("hybrid", "task_lora", 1), name.replace("hybrid", "hybrid_noskills", 1)):
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
    parser.add_argument("--balance-labels", action="store_true", help="class-balanced training records (use a --tag)")
    parser.add_argument("--lorahub-budget", type=int, default=40, help="loss evaluations of the lorahub fit")
    parser.add_argument("--temperature", type=float, default=1.0, help="router softmax temperature")
    parser.add_argument("--training-args", default="{}", help="JSON overrides for every trained variant")
    parser.add_argument("--tag", default="", help="suffix of this configuration's variant names (variant@tag)")
    parser.add_argument("--limit", type=int, default=None, help="test records (default: all)")
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(os.cpu_count() or 1)

    from samdkif_peft.base_model import resolve_base_model
    from samdkif_peft.skills.shipped import parse_skill_arguments

    base = resolve_base_model(args.base_model)
    # a skill folder is named after its skill (runs/medical/skills/nli) or its repo (release/skills/skill-nli)
    skills = {name: str(Path(ref).resolve()) for name, ref in parse_skill_arguments([args.skills_dir]).items()}
    out = Path(args.out) / f"k={args.k or 'all'}" / f"seed={args.seed}"
    rows = {}
    for task in args.tasks:
        for variant in args.variants:
            result = run_variant(variant, task, skills, base, args, out)
            if result is None:
                continue
            report = result["report"]
            names = report.get("metric_names", ["accuracy", "macro_f1"])
            rows.setdefault(task, {})[result["variant"]] = {
                **{k: report[k] for k in names}, "intervals": report["intervals"],
                "accuracy_mean": report.get("accuracy_mean"), "prediction_counts": report["prediction_counts"],
                "n": result["n"], "train_seconds": result["train_seconds"], "eval_seconds": result["seconds"],
                "skills_dir": os.fspath(args.skills_dir), "fitted": result.get("fitted"),
            }  # fmt: skip
            rows[task]["_baselines"] = report["baselines"]
            shown = " ".join(f"{k}={report[k]:.3f} [{report['intervals'][k][0]:.3f}, {report['intervals'][k][1]:.3f}]"
                             for k in names)  # fmt: skip
            print(f"{task:28s} {result['variant']:14s} {shown} preds={report['prediction_counts']}", flush=True)
    for task in rows:  # hybrid vs task LoRA at the same rate, paired on the same test records
        if scoreable(task):
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
