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
  `own_skill_lora`: the hybrid over the task's own skill only (a frozen skill at weight 1 plus a task LoRA trained
  on top: what a user who knows which skill fits would stack without a router);
  `task_lora`: a LoRA r8 on q,v trained on the task alone (what a user picks instead; `--task-rank` sets the
  rank of both task adapters, alpha 2r);
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
import random
import re
import shutil
import time
from collections import Counter
from pathlib import Path

import torch

from samdkif_peft.data import TASKS, load_task
from samdkif_peft.data.templates import format_messages, format_prompt
from samdkif_peft.evaluation.likelihood import evaluate_options, paired_bootstrap, scoreable
from samdkif_peft.tuner.config import GATE_SCOPES
from samdkif_peft.utils import cpu_description


RESULTS = Path(__file__).resolve().parent / "results"
VARIANTS = (
    "base",
    "base_chat",
    "base_3shot",
    "uniform",
    "own_skill",
    "lorahub",
    "router",
    "router_token",
    "router_static",
    "xlora",
    "hybrid",
    "hybrid_noskills",
    "own_skill_lora",
    "task_lora",
    "task_adalora",
)
TRAINED = ("router", "router_token", "router_static", "xlora", "hybrid", "own_skill_lora", "task_lora", "task_adalora")
ROUTER_KINDS = {"router": "sequence", "router_token": "token", "router_static": "static", "hybrid": "sequence",
                "own_skill_lora": "static"}  # fmt: skip
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


def own_skill(spec, args) -> str | None:
    """The skill of `own_skill[_lora]`: the task's own type, or `--own-skill` (e.g. a knowledge skill for an unseen
    task)."""
    return args.own_skill or spec.skill_type


def train_variant(variant, task, data, skills, base, folder, args):
    variant = variant.split("@")[0]
    from samdkif_peft.training import DEFAULT_ROUTER_MAX_LENGTH, train_router, train_skill

    # every variant sees the same tokens: the routers' length (a PubMed record or Elixhauser's 39-flag query is over
    # the skills' 256 and would be cut in its middle for the task LoRA only)
    common = dict(dataset=data, max_eval_samples=64, resume_from_checkpoint=True, balance_labels=args.balance_labels,
                  max_length=DEFAULT_ROUTER_MAX_LENGTH)  # fmt: skip
    overrides = {"seed": args.seed, "save_steps": 50, "eval_steps": 50, **json.loads(args.training_args)}
    if args.max_steps:
        overrides["max_steps"] = args.max_steps
    if variant in ROUTER_KINDS:
        router = ROUTER_KINDS[variant]
        # the study's routers start uniform unless --skill-prior is given (its cells predate the library's default)
        extra = {"temperature": args.temperature, "task_rank": 0, "skill_prior_records": args.skill_prior}
        if variant == "router" and args.sequence_input:
            extra["sequence_input"] = args.sequence_input
        if variant in ("hybrid", "own_skill_lora"):
            extra = {"task_rank": args.task_rank, "task_learning_rate": args.task_learning_rate,
                     "skill_prior_records": args.skill_prior if variant == "hybrid" else 0}  # fmt: skip
        if variant != "own_skill_lora":
            extra["gate_scope"] = args.gate_scope
        if variant == "hybrid":  # the routing levers of docs/MEDICAL_VALUE.md (defaults: the library's)
            router, always = args.hybrid_router, float("-inf") if args.skill_prior_always else None
            extra.update(temperature=args.temperature, top_k=args.top_k, null_expert=args.null_expert,
                         sequence_input=args.sequence_input, skill_prior_min_gain=always,
                         skill_prior_min_t=always)  # fmt: skip
        if variant == "own_skill_lora":  # one skill: its gate is 1 whatever the router learns
            skills = {name: skills[name] for name in [own_skill(TASKS[task], args)]}
        return train_router(task, skills, base, folder, router=router, training_args=overrides, **extra,
                            **common)  # fmt: skip
    if variant == "xlora":
        return train_xlora(task, data, skills, base, folder, overrides, args.balance_labels)
    if variant == "task_lora":  # LoRA r8, alpha 16, dropout 0.05 on q, v (`default_lora_config`) at --task-rank 8
        from samdkif_peft.training.train_skill import default_lora_config

        config = default_lora_config(r=args.task_rank, lora_alpha=2 * args.task_rank)  # alpha 2r, like the hybrid's
        return train_skill(task, base, folder, peft_config=config, training_args=overrides, **common)
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
    save_xlora_classifier(model, folder)
    # peft also wrote a full copy of the model (249 MB) into each numbered subfolder and every checkpoint; the cell
    # needs only the config and the classifier (the skills load from the paths in `adapter_config.json`)
    for path in [Path(folder) / "checkpoints", *(Path(folder) / name for name in adapters)]:
        shutil.rmtree(path, ignore_errors=True)
    write_results(folder, {"task": task, "peft_type": "XLORA", **summary})
    return folder


XLORA_CLASSIFIER = "xlora_classifier.safetensors"


def save_xlora_classifier(model, folder) -> None:
    """Save X-LoRA's trained classifier next to its config, because peft (0.21.2) does not: X-LoRA's adapters must be
    named "0", "1", ..., and `get_peft_model_state_dict` files every key that contains an adapter's name under that
    adapter, so the classifier's `layers.0.*` keys land (renamed `layers.*`) in the subfolder `0/` and the top-level
    `adapter_model.safetensors` is empty. `PeftModel.from_pretrained` then returns a randomly initialised classifier
    without a warning (our first X-LoRA cells were scored that way)."""
    from safetensors.torch import save_file

    state = model.base_model.internal_xlora_classifier.state_dict()
    save_file({key: value.detach().contiguous() for key, value in state.items()}, str(Path(folder) / XLORA_CLASSIFIER))


def load_xlora(model, folder):
    """An X-LoRA cell as trained: skills in the trained order, then the classifier saved by `save_xlora_classifier`.

    peft (0.21.2) names X-LoRA's experts by their position in `adapters`, not by its keys, and `adapter_config.json`
    stores that dict with sorted keys ("0", "1", "10", "11", "2", ...): with more than ten skills a plain
    `PeftModel.from_pretrained` puts skill 10 where the classifier expects skill 2, and so on (eval loss 11.2 instead
    of 0.37 on NLI). So the keys are put back in numeric order before loading."""
    from peft import PeftModel, XLoraConfig

    config = XLoraConfig.from_pretrained(folder)
    config.adapters = dict(sorted(config.adapters.items(), key=lambda item: int(item[0])))
    model = PeftModel.from_pretrained(model, folder, config=config)
    _load_xlora_classifier(model, folder)
    return model


class CachedXLora:
    """peft's X-LoRA model with a KV-cached greedy `generate` (everything else is the model's own).

    peft (0.21.2) generates with X-LoRA only without a KV cache (`XLoraModel.generate` sets `use_cache=False`): each
    new token re-runs both of its passes over the whole sequence (section 30 of docs/MEDICAL_VALUE.md: 316 s for four
    HPO QA answers on 2 CPU cores), so the open-answer tasks could not be scored here. Both passes are causal and the
    classifier maps each token's last hidden state to that token's scalings (softmax, top-k and layer-wise options all
    act per token), so each pass can keep its own cache: per step, the scaling pass (the skills at peft's dummy
    scalings, as in `XLoraModel._enable_peft_forward_hooks`) runs the new tokens on its cache, the classifier turns
    their hidden states into their scalings, and the real pass runs them on the other cache. In float32 the tokens
    equal peft's uncached greedy decoding (`tests/test_study_xlora.py`); in bf16 a cached and an uncached pass round
    differently, as for any KV cache. Eval mode only (X-LoRA's dropouts would make both paths random)."""

    def __init__(self, model):
        from peft.tuners.lora import LoraLayer
        from peft.tuners.xlora.model import XLoraModel

        if not isinstance(getattr(model, "base_model", None), XLoraModel):
            raise TypeError(f"CachedXLora wraps a PeftModel over an X-LoRA model, got {type(model).__name__}")
        self.model = model
        self._lora_layers = [m for m in model.base_model.modules() if isinstance(m, LoraLayer)]  # the scalings' hooks

    def __getattr__(self, name):
        if name in ("model", "_lora_layers"):  # not set yet (copy, pickle): not the wrapped model's
            raise AttributeError(name)
        return getattr(self.model, name)

    def __call__(self, *args, **kwargs):
        return self.model(*args, **kwargs)

    def _pass(self, scalings, inputs: dict, cache, *, scaling_pass: bool):
        xlora = self.model.base_model

        def inject(module, args, kwargs):
            kwargs["scalings"] = scalings
            return args, kwargs

        handles = [m.register_forward_pre_hook(inject, with_kwargs=True) for m in self._lora_layers]
        if scaling_pass:
            xlora.lora_model.disable_adapter_layers()
        try:
            return xlora.lora_model.model(**inputs, past_key_values=cache, use_cache=True, return_dict=True,
                                          output_hidden_states=scaling_pass, logits_to_keep=1)  # fmt: skip
        finally:
            for handle in handles:
                handle.remove()
            if scaling_pass:
                xlora.lora_model.enable_adapter_layers()
                xlora._maybe_freeze_all_adapters()

    @torch.no_grad()
    def generate(self, input_ids, attention_mask=None, *, max_new_tokens: int, eos_token_id: int | list[int],
                 pad_token_id: int, do_sample: bool = False, stop_strings=(), tokenizer=None):  # fmt: skip
        """Greedy decoding of a left-padded batch; a row stops at EOS or once its new text holds a stop string."""
        from transformers import DynamicCache

        if do_sample:
            raise ValueError("CachedXLora decodes greedily only (do_sample=False)")
        if stop_strings and tokenizer is None:
            raise ValueError("stop_strings need the tokenizer (tokenizer=...) to be matched")
        mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask
        if not bool(mask[:, -1].all()):
            raise ValueError("CachedXLora needs left padding (tokenizer.padding_side = 'left'): a row ends in padding")
        classifier = self.model.base_model.internal_xlora_classifier
        eos = torch.tensor(eos_token_id if isinstance(eos_token_id, list) else [eos_token_id], device=input_ids.device)
        step, positions = input_ids, (mask.long().cumsum(-1) - 1).clamp(min=0)
        caches = DynamicCache(config=self.model.config), DynamicCache(config=self.model.config)
        done = torch.zeros(len(input_ids), dtype=torch.bool, device=input_ids.device)
        new: list[torch.Tensor] = []
        for _ in range(max_new_tokens):
            inputs = {"input_ids": step, "attention_mask": mask, "position_ids": positions}
            hidden = self._pass(classifier.make_dummy_scalings(input_ids=step), inputs, caches[0], scaling_pass=True)
            scalings = classifier(result=hidden, input_ids=step)
            self.model.base_model.internal_xlora_scalings = scalings
            logits = self._pass(scalings, inputs, caches[1], scaling_pass=False).logits[:, -1]
            token = torch.where(done, pad_token_id, logits.argmax(-1))
            new.append(token)
            done |= torch.isin(token, eos)
            if stop_strings:
                texts = tokenizer.batch_decode(torch.stack(new, 1), skip_special_tokens=True)
                done |= torch.tensor([any(s in t for s in stop_strings) for t in texts], device=done.device)
            if done.all():
                break
            step = token[:, None]
            mask = torch.cat([mask, mask.new_ones(len(mask), 1)], 1)
            positions = positions[:, -1:] + 1
        return torch.cat([input_ids, torch.stack(new, 1)], 1)


def _load_xlora_classifier(model, folder) -> None:
    from safetensors.torch import load_file

    path = Path(folder) / XLORA_CLASSIFIER
    if not path.is_file():
        raise SystemExit(f"{folder}: no {XLORA_CLASSIFIER}, so its trained X-LoRA classifier is lost (peft saves"
                         f" none); delete the folder and its cell's json to train it again")  # fmt: skip
    model.base_model.internal_xlora_classifier.load_state_dict(load_file(str(path)), strict=True)


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
    if variant == "xlora":
        return CachedXLora(load_xlora(model, folder)), tokenizer
    return PeftModel.from_pretrained(model, folder), tokenizer


def run_variant(variant, task, skills, base, args, out: Path):
    from contextlib import nullcontext

    spec = TASKS[task]
    name, variant = variant, variant + (f"@{args.tag}" if args.tag else "")
    path = out / task / f"{variant}.json"
    if path.is_file():
        return json.loads(path.read_text())
    if name in ("own_skill", "own_skill_lora") and own_skill(spec, args) not in skills:
        return None
    data = subsample(load_task(task), args.k, args.seed)
    folder = str(out / task / "adapters" / variant.replace("hybrid_noskills", "hybrid"))
    train_seconds = None
    if name in TRAINED:
        start = time.perf_counter()
        if not (Path(folder) / "train_results.json").is_file():
            train_variant(variant, task, data, skills, base, folder, args)
            train_seconds = time.perf_counter() - start
        else:  # trained by an earlier run: its own training time, not this run's zero
            train_seconds = json.loads((Path(folder) / "train_results.json").read_text()).get("train_runtime")
    model, tokenizer = load_variant(variant, task, skills, base, folder)
    prompt_fn = {"base_chat": chat_prompt(tokenizer), "base_3shot": few_shot_prompt(data["train"])}.get(name)
    forced = nullcontext()
    fitted = None
    if name == "own_skill":
        forced = model.base_model.force_skill_weights({own_skill(spec, args): 1.0})
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
    # the CPU is part of a cell's identity: the same code and seed train differently on AMX and AVX-512 bf16 kernels
    result.update(variant=variant, task=task, train_seconds=train_seconds, k=args.k, seed=args.seed, tag=args.tag,
                  training_args=json.loads(args.training_args), cpu=cpu_description())  # fmt: skip
    if fitted:
        result["fitted"] = fitted
    if name in ROUTER_KINDS or name == "xlora":
        result["train_results"] = json.loads((Path(folder) / "train_results.json").read_text())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1))
    return result


def evaluate_generated(model, tokenizer, spec, data, args, prompt_fn):
    """Open-answer tasks, scored on greedy generations with the task's own metrics and bootstrap intervals over
    records: label sets and entity lists by micro-F1 (each record's true/false positives and negatives resampled
    together), texts and spans by the mean of per-record ROUGE-L / exact match / token F1."""
    from samdkif_peft.evaluation.generation import evaluate_task

    result = evaluate_task(model, tokenizer, spec, data, limit=args.limit, batch_size=args.batch_size, progress=True,
                           prompt_fn=prompt_fn)  # fmt: skip
    test = data["test"] if args.limit is None else data["test"].select(range(min(args.limit, len(data["test"]))))
    result["report"] = generated_report(spec, result["predictions"], test, data["train"])
    result["per_record"] = result["report"].pop("per_record")
    result["references"] = list(test["output"])
    return result


def _counted(spec) -> bool:
    """Set-valued answers (micro-F1 over the pooled counts) rather than per-record means."""
    return spec.output_format in ("label_set", "entities")


def record_rows(spec, predictions, test) -> list[list]:
    """Per test record: `[predicted set, reference set]` (sorted lists) for set-valued answers, else the task's
    metrics of that record."""
    from samdkif_peft.evaluation.parsing import parse_prediction
    from samdkif_peft.evaluation.scoring import score_task

    rows = []
    for p, r, c in zip(predictions, test["output"], test["context"]):
        if _counted(spec):
            rows.append([parse_prediction(spec, p, c), parse_prediction(spec, r, c)])
        else:
            rows.append(list(score_task(spec, [p], [r], [c]).values()))
    return rows


def aggregate(spec, rows) -> dict[str, float]:
    """The task's metrics from `record_rows`, as the packaged metrics compute them (tested equal on the data)."""
    import numpy as np

    from samdkif_peft.evaluation.scoring import task_metric_names

    names = task_metric_names(spec)
    if not _counted(spec):
        return {name: float(v) for name, v in zip(names, np.asarray(rows, float).mean(0))}
    tp, fp, fn = Counter(), Counter(), Counter()
    for got, want in rows:
        got, want = set(got), set(want)
        tp.update(got & want)
        fp.update(got - want)
        fn.update(want - got)

    def f1(t, p, n):
        return 2 * t / (2 * t + p + n) if t else 0.0

    total = sum(tp.values()), sum(fp.values()), sum(fn.values())
    gold = set(tp) | set(fn)
    values = {
        "micro_f1": f1(*total) if any(total) else 1.0,
        "macro_f1": sum(f1(tp[x], fp[x], fn[x]) for x in gold) / len(gold) if gold else float(not fp),
        "exact_match": sum(set(a) == set(b) for a, b in rows) / len(rows),
    }
    return {name: float(values[name]) for name in names}


def generated_report(spec, predictions, test, train) -> dict:
    """Metrics, 95 % intervals, the most frequent answers (a collapsed model repeats one), and the baselines a user
    has without a model: the most frequent training answer and, where the task allows one, a rule (`heuristic`)."""
    import numpy as np

    from samdkif_peft.evaluation.likelihood import _percentile_interval
    from samdkif_peft.evaluation.scoring import task_metric_names

    names = list(task_metric_names(spec))
    rows = record_rows(spec, predictions, test)
    rng = np.random.default_rng(0)
    samples = [aggregate(spec, [rows[i] for i in rng.integers(0, len(rows), len(rows))]) for _ in range(1000)]
    shown = Counter(" ".join(p.split())[:80] or "(empty)" for p in predictions)
    n = len(test["output"])
    if _counted(spec):  # the most frequent parsed set ("B; A" and "A; B" are one answer)
        from samdkif_peft.evaluation.parsing import parse_prediction

        parsed = Counter(tuple(parse_prediction(spec, o, c)) for o, c in zip(train["output"], train["context"]))
        top = list(parsed.most_common(1)[0][0])
        majority_rows = [[top, want] for _, want in rows]  # the references, already parsed
        majority = "; ".join(top) or "none"
    else:
        majority = Counter(train["output"]).most_common(1)[0][0]
        majority_rows = record_rows(spec, [majority] * n, test)
    baselines = {"majority": {"label": " ".join(majority.split())[:80], **aggregate(spec, majority_rows)}}
    rule = HEURISTICS.get(spec.name)
    if rule is not None:
        guesses = rule[1](test, train)
        baselines["heuristic"] = {"label": rule[0], **aggregate(spec, record_rows(spec, guesses, test))}
    return {
        **aggregate(spec, rows), "metric_names": names,
        "intervals": {k: _percentile_interval([x[k] for x in samples], 0.95) for k in names},
        "prediction_counts": dict(shown.most_common(8)), "distinct_predictions": len(shown),
        "baselines": baselines, "per_record": rows,
    }  # fmt: skip


def _lead_sentence(test, train):
    return [re.split(r"(?<=[.!?])\s+", context.strip(), maxsplit=1)[0] for context in test["context"]]


def _last_section(test, train):
    """The abstract's last labelled section without its label (structured abstracts end with CONCLUSION(S):)."""
    return [re.sub(r"^[A-Z][A-Z ,/&-]+:\s*", "", context.strip().split("\n")[-1]) for context in test["context"]]


def _dictionary_entities(test, train):
    """Every training mention found in the text (longest first, whole words), with its training type."""
    from samdkif_peft.evaluation.parsing import parse_entities

    lexicon = {}
    for output in train["output"]:
        for entity in parse_entities(output):
            kind, mention = entity.split(": ", 1)
            lexicon.setdefault(mention, kind)
    if not lexicon:
        return [""] * len(test["context"])
    by_length = sorted(lexicon, key=len, reverse=True)
    pattern = re.compile(r"\b(" + "|".join(re.escape(m) for m in by_length) + r")\b", re.IGNORECASE)
    found = ([(lexicon.get(m.group(1).lower()), m.group(1)) for m in pattern.finditer(context)]
             for context in test["context"])  # fmt: skip
    return ["\n".join(f"{kind}: {text}" for kind, text in entities if kind) for entities in found]


_ICD_CODE = re.compile(r"\(ICD-10-CM ([A-Z0-9.]+)\)")


def _nearest_code(test, train):
    """The flags of the training diagnosis whose ICD-10-CM code shares the longest prefix with the test code (the
    most frequent answer among ties): AHRQ maps code ranges, so neighbouring codes share flags."""
    import os

    def code(context: str) -> str:  # no code in the record: every training record ties (the most frequent answer)
        found = _ICD_CODE.search(context)
        return found.group(1).replace(".", "") if found else ""

    known = [(code(c), o) for c, o in zip(train["context"], train["output"])]
    answers = []
    for context in map(code, test["context"]):
        shared = [(len(os.path.commonprefix([context, k])), o) for k, o in known]
        best = max(n for n, _ in shared)
        answers.append(Counter(o for n, o in shared if n == best).most_common(1)[0][0])
    return answers


# task -> (what the rule does, rule(test, train) -> one answer per test record)
HEURISTICS = {
    "pubmed_title_generation": ("first sentence of the abstract", _lead_sentence),
    "pubmed_conclusion_extraction": ("last section of the abstract", _last_section),
    "drug_disease_ner": ("training mentions found in the text", _dictionary_entities),
    "elixhauser_comorbidity": ("flags of the training code sharing the longest prefix", _nearest_code),
}


# Tasks whose answers are PubMed text (abstract sections, article titles). What leaves the machine (the summary
# JSON, `--publish` copies) keeps their scores and per-record metrics, never the text: the abstracts are not ours.
PUBMED_TEXT = ("pubmed_conclusion_extraction", "pubmed_title_generation")
WITHHELD = "(PubMed text withheld)"


_DIGEST_RE = re.compile(r"[0-9a-f]{12}")


def _digest(text: str) -> str:
    """A short stable name for a text: equal answers stay equal, the text does not leave."""
    import hashlib

    return hashlib.sha1(text.encode()).hexdigest()[:12]


def publishable_report(task: str, report: dict) -> dict:
    """`report` with PubMed text replaced: answer counts keep only the largest count, the majority answer its role."""
    if task not in PUBMED_TEXT:
        return report
    counts = report.get("prediction_counts") or {}
    baselines = {k: dict(v) for k, v in report.get("baselines", {}).items()}
    if "majority" in baselines:
        baselines["majority"]["label"] = f"most frequent answer {WITHHELD}"
    return {**report, "prediction_counts": {WITHHELD: max(counts.values(), default=0)}, "baselines": baselines}


def publishable(task: str, result: dict) -> dict:
    """A cached variant result fit to commit: for `PUBMED_TEXT` tasks, predictions and references become digests.
    Idempotent: a cell published before (a committed cell copied back into a study's cache) keeps its digests, which
    a second pass would replace with digests of digests, no longer equal to a fresh cell's."""
    if task not in PUBMED_TEXT:
        return result
    out = {**result, "report": publishable_report(task, result["report"])}
    for key in ("predictions", "references"):
        values = [str(x) for x in out.get(key, [])]
        if key in out and not all(_DIGEST_RE.fullmatch(x) for x in values):
            out[key] = [_digest(x) for x in values]
    return out


def paired_generated(spec, rows_a, rows_b, n_resamples: int = 1000) -> dict[str, dict]:
    """A minus B on the same records for open-answer tasks (paired bootstrap, records resampled together)."""
    score_a, score_b = (record_scorer(spec, {"per_record": rows}, [], open_answers=True) for rows in (rows_a, rows_b))
    return paired_bootstrap(score_a, score_b, len(rows_a), n_resamples=n_resamples)


def _base_tag(variant: str) -> str | None:
    """The configuration a lever's tag varies: `hybrid@prior-lr5e-3` -> `lr5e-3` (tags are `<lever>-<base tag>`)."""
    tag = variant.partition("@")[2]
    return tag.partition("-")[2] or None


def paired_comparisons(folder: Path, spec) -> dict[str, dict]:
    """`hybrid[@tag] - task_lora[@tag]` (against what a user picks instead), `hybrid[@tag] - hybrid_noskills[@tag]`
    (what the skills add inside the hybrid) and `hybrid[@tag] - own_skill_lora[@tag]` (what routing over twelve skills
    adds to stacking a LoRA on the task's own skill) for every tag both were run with, from the cached predictions.
    A lever's hybrid (`hybrid@<lever>-<base>`) is also paired with the base configuration's hybrid and, where the
    lever trained no task LoRA (own-skill stack) of its own, with the base configuration's."""
    results = {p.stem: json.loads(p.read_text()) for p in folder.glob("*.json")}
    pairs = {}
    for name, result in results.items():
        if not (name.startswith("hybrid@") or name == "hybrid"):
            continue
        others = [name.replace("hybrid", x, 1) for x in ("task_lora", "hybrid_noskills", "own_skill_lora")]
        base = _base_tag(name)
        if base:  # the base configuration's hybrid, and its baselines the lever did not train its own of
            others += [f"hybrid@{base}"] + [
                f"{x}@{base}" for x, mine in zip(("task_lora", "own_skill_lora"), others[::2]) if mine not in results
            ]
        for other in others:
            if other not in results:
                continue
            a, b = result, results[other]
            if len(a["references"]) != len(b["references"]):
                raise SystemExit(f"{folder}: {name} and {other} scored different test records; rerun with one --limit")
            open_answers = "per_record" in a and "per_record" in b  # open-answer task: the task's own metrics
            if open_answers or scoreable(spec):
                refs = a["references"]
                pairs[f"{name} - {other}"] = paired_bootstrap(
                    record_scorer(spec, a, refs, open_answers), record_scorer(spec, b, refs, open_answers), len(refs)
                )
    return pairs


def record_scorer(spec, result: dict, references: list, open_answers: bool | None = None):
    """pick -> `result`'s metrics on the test records at `pick`: the task's own metrics from its per-record rows
    (open answers; by default when it has them), else accuracy and macro-F1 of its predicted labels."""
    import numpy as np

    from samdkif_peft.evaluation.likelihood import _fast_scores

    if open_answers if open_answers is not None else "per_record" in result:
        rows = result["per_record"]
        return lambda pick: aggregate(spec, [rows[i] for i in pick])
    predictions, refs = np.array(result["predictions"], dtype=object), np.array(references, dtype=object)
    return lambda pick: _fast_scores(predictions[pick], refs[pick])


def merge_rows(budget: dict, rows: dict) -> None:
    """Add this run's rows to a budget's stored ones. Paired comparisons are merged too: a run whose cache lacks a
    pair's cells (another machine, a fresh `--out`) keeps the stored pair instead of erasing it."""
    for task, variants in rows.items():
        stored = budget.setdefault(task, {})
        paired = {**stored.get("_paired", {}), **variants.get("_paired", {})}
        stored.update(variants)
        if paired:
            stored["_paired"] = paired


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
    parser.add_argument("--task-rank", type=int, default=8, help="rank of the hybrid's task LoRA and of task_lora "
                        "(use a --tag)")  # fmt: skip
    parser.add_argument("--task-learning-rate", type=float, default=1e-3, help="the hybrid's task LoRA rate")
    parser.add_argument("--balance-labels", action="store_true", help="class-balanced training records (use a --tag)")
    parser.add_argument("--lorahub-budget", type=int, default=40, help="loss evaluations of the lorahub fit")
    parser.add_argument("--own-skill", default=None, help="the skill of own_skill[_lora] (default: the task's type; "
                        "use a --tag)")  # fmt: skip
    parser.add_argument("--temperature", type=float, default=1.0, help="router softmax temperature (router kinds "
                        "and hybrid; use a --tag)")  # fmt: skip
    parser.add_argument("--hybrid-router", default="sequence", choices=("sequence", "token", "static"),
                        help="the hybrid's router kind (use a --tag)")  # fmt: skip
    parser.add_argument("--top-k", type=int, default=None, help="the hybrid's top-k gates (use a --tag)")
    parser.add_argument("--gate-scope", default="module", choices=GATE_SCOPES, help="which "
                        "adapted modules share one gate, routers and hybrid (use a --tag)")  # fmt: skip
    parser.add_argument("--null-expert", action="store_true", help="the hybrid gets a 'base model only' choice "
                        "(use a --tag)")  # fmt: skip
    parser.add_argument("--skill-prior", type=int, default=0, help="the routers (not own_skill_lora) start from the "
                        "skills' losses on this many training records (0: uniform; use a --tag)")  # fmt: skip
    parser.add_argument("--skill-prior-always", action="store_true", help="the hybrid starts from the prior even "
                        "where no skill beats the uniform mix (the first prior cells; use a --tag)")  # fmt: skip
    parser.add_argument("--sequence-input", default=None, help="what the sequence router (alone or in the hybrid) "
                        "pools, e.g. layer:15 (use a --tag)")  # fmt: skip
    parser.add_argument("--training-args", default="{}", help="JSON overrides for every trained variant")
    parser.add_argument("--tag", default="", help="suffix of this configuration's variant names (variant@tag)")
    parser.add_argument("--limit", type=int, default=None, help="test records (default: all)")
    parser.add_argument("--publish", default=None, help="copy the tasks' cached results here, fit to commit, e.g. "
                        "benchmarks/results/label_tasks_released (PubMed text withheld)")  # fmt: skip
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
            shown_report = result["report"]
            report = publishable_report(task, shown_report)
            names = report.get("metric_names", ["accuracy", "macro_f1"])
            rows.setdefault(task, {})[result["variant"]] = {
                **{k: report[k] for k in names}, "intervals": report["intervals"],
                "accuracy_mean": report.get("accuracy_mean"), "prediction_counts": report["prediction_counts"],
                "n": result["n"], "train_seconds": result["train_seconds"], "eval_seconds": result["seconds"],
                "skills_dir": os.fspath(args.skills_dir), "fitted": result.get("fitted"), "metric_names": names,
                "distinct_predictions": report.get("distinct_predictions"),
            }  # fmt: skip
            rows[task]["_baselines"] = report["baselines"]
            shown = " ".join(f"{k}={report[k]:.3f} [{report['intervals'][k][0]:.3f}, {report['intervals'][k][1]:.3f}]"
                             for k in names)  # fmt: skip
            print(f"{task:28s} {result['variant']:14s} {shown} preds={shown_report['prediction_counts']}", flush=True)
    for task in rows:  # hybrid vs task LoRA at the same rate, paired on the same test records
        rows[task]["_paired"] = paired_comparisons(out / task, TASKS[task])
    # One JSON for every budget: runs["k=all"|"k=64"|...][task][variant]; other budgets' rows are kept.
    path = Path(args.json)
    payload = json.loads(path.read_text()) if path.is_file() else {}
    budget = payload.setdefault("runs", {}).setdefault(f"k={args.k or 'all'}, seed={args.seed}", {})
    merge_rows(budget, rows)
    payload.update(
        seed=args.seed,
        skills_dir=os.fspath(args.skills_dir),
        scoring="option log-likelihood, sum; open answers: greedy generation",
        machine={"cpu": cpu_description(), "threads": torch.get_num_threads()},
    )
    path.write_text(json.dumps(payload, indent=1) + "\n")
    if args.publish:  # the cached results of these tasks, fit to commit (PubMed text withheld)
        for task in args.tasks:
            target = Path(args.publish) / out.parent.name / out.name / task
            target.mkdir(parents=True, exist_ok=True)
            for cached in sorted((out / task).glob("*.json")):
                result = publishable(task, json.loads(cached.read_text()))
                (target / cached.name).write_text(json.dumps(result, indent=1) + "\n")  # as committed cells are


if __name__ == "__main__":
    main()
