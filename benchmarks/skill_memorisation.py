"""Do the skills remember the facts they were trained on? Closed-answer accuracy on training vs held-out records.

    python benchmarks/skill_memorisation.py --skills-dir release/skills [--n 75]

A skill that carries knowledge (not only a format) answers its own training records better than records about
entities it never saw (the skill-validation buckets, entity-disjoint by the split). For every closed-answer recipe
of a skill (options `(A) ...` or a small label set), the base model and the skill score `--n` training and `--n`
held-out records by option log-likelihood (sum); the memorisation signal is the skill's gain over the base model on
training records minus its gain on held-out ones. Routing can only inject knowledge that the skills hold, so this
bounds what any router can add on a task about the skills' entities. Results: `results/skill_memorisation.json`.

    python benchmarks/skill_memorisation.py --skills relation_extraction --probe-epochs 10 --probe-rate 5e-3

`--probe-epochs E` asks whether the adapter *can* hold such facts at all: instead of the released skill, it trains a
LoRA r8 (the skill recipe) on exactly the probed training records, E passes at `--probe-rate`, and scores that
(`runs/skill-probe/<skill>@<E>ep-lr<rate>`; results in `results/skill_memorisation_probe.json`). If facts seen E times
are not remembered, no affordable skill budget injects them.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import torch


RESULTS = Path(__file__).resolve().parent / "results"
# skill -> its closed-answer recipes (the template_id prefixes of its records)
CLOSED = {
    "multiple_choice_qa": ("hpo.disease_feature_mcq", "icd10cm.sibling_mcq"),
    "nli": ("hpo.disease_nli", "icd10cm.excludes_nli"),
    "relation_extraction": ("hpo.disease_relation", "icd10cm.note_relation"),
    "multilabel_doc_classification": ("icd10cm.chapter",),
    "entity_attribute": ("cms.billable",),
}


def options_of(records: list[dict], labels: list[str]) -> list[list[str]]:
    """The allowed answers: a record's own `(A) ...` lines, else the recipe's label set."""
    from samdkif_peft.evaluation.parsing import parse_options

    return [[f"({k}) {v}" for k, v in parse_options(r["context"]).items()] or labels for r in records]


def correct(model, tokenizer, records: list[dict], labels: list[str]) -> list[float]:
    from samdkif_peft.data.templates import format_prompt
    from samdkif_peft.evaluation.likelihood import option_log_likelihoods, pick_options

    options = options_of(records, labels)
    with torch.no_grad():
        scores = option_log_likelihoods(model, tokenizer, [format_prompt(r) for r in records], options)
    return [float(o[p] == r["output"]) for o, p, r in zip(options, pick_options(scores), records)]


def summary(values: list[float]) -> dict:
    from samdkif_peft.evaluation.likelihood import bootstrap_mean_interval

    return {"accuracy": sum(values) / len(values), "interval": bootstrap_mean_interval(values), "n": len(values),
            "correct": values}  # fmt: skip


def memorisation(row: dict, n_resamples: int = 1000) -> dict:
    """(skill - base) on training records minus (skill - base) on held-out ones, with a 95 % bootstrap interval:
    records resampled within each split, the skill and the base model paired on the same records."""
    import numpy as np

    gains = {s: np.asarray(row["skill"][s]["correct"]) - np.asarray(row["base"][s]["correct"]) for s in row["skill"]}
    return gain_difference(gains["train"], gains["validation"], n_resamples)


def gain_difference(train, validation, n_resamples: int = 1000) -> dict:
    """mean(train) - mean(validation) of per-record gains, with a 95 % bootstrap interval (each split resampled on its
    own): how much more a skill gained on records it was trained on than on held-out ones."""
    import numpy as np

    rng = np.random.default_rng(0)
    train, validation = np.asarray(train), np.asarray(validation)
    samples = [train[rng.integers(0, len(train), len(train))].mean()
               - validation[rng.integers(0, len(validation), len(validation))].mean()
               for _ in range(n_resamples)]  # fmt: skip
    return {"difference": float(train.mean() - validation.mean()),
            "interval": [float(x) for x in np.percentile(samples, [2.5, 97.5])]}  # fmt: skip


def probe_adapter(skill: str, recipes: dict, args) -> Path:
    """A LoRA r8 (the skill recipe) trained on exactly the probed training records of `skill`'s recipes; resumes."""
    from datasets import Dataset, DatasetDict

    from samdkif_peft.base_model import resolve_base_model
    from samdkif_peft.training import train_skill

    out = Path(args.probe_out) / f"{skill}@{args.probe_epochs:g}ep-lr{args.probe_rate:g}"
    if (out / "adapter_model.safetensors").is_file():
        return out
    fields = ("context", "query", "output")
    records = [{k: r[k] for k in fields} for pick, _ in recipes.values() for r in pick["train"]]
    has_checkpoint = any((out / "checkpoints").glob("checkpoint-*"))
    train_skill(skill, resolve_base_model(None), out, dataset=DatasetDict(train=Dataset.from_list(records)),
                training_args={"num_train_epochs": args.probe_epochs, "learning_rate": args.probe_rate,
                               "save_steps": 50, "seed": 42},
                resume_from_checkpoint=has_checkpoint or None)  # fmt: skip
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skills-dir", default="release/skills")
    parser.add_argument("--skills", nargs="+", default=list(CLOSED), choices=list(CLOSED))
    parser.add_argument("--n", type=int, default=75, help="records per recipe and split (validation has ~75)")
    parser.add_argument("--json", default=None, help="default results/skill_memorisation[_probe].json")
    parser.add_argument("--probe-epochs", type=float, default=0, help="train a probe adapter on the probed records")
    parser.add_argument("--probe-rate", type=float, default=5e-3, help="the probe adapter's learning rate")
    parser.add_argument("--probe-out", default="runs/skill-probe")
    args = parser.parse_args()
    if args.json is None:
        name = "skill_memorisation_probe.json" if args.probe_epochs else "skill_memorisation.json"
        args.json = str(RESULTS / name)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", os.cpu_count() or 1)))

    from peft import PeftModel

    from samdkif_peft.base_model import load_base_model
    from samdkif_peft.data.build import load_skill
    from samdkif_peft.skills.shipped import parse_skill_arguments
    from samdkif_peft.utils import cpu_description

    folders = parse_skill_arguments([args.skills_dir])
    path = Path(args.json)
    results = json.loads(path.read_text())["skills"] if path.is_file() else {}
    for skill in args.skills:
        splits = load_skill(skill, build_if_missing=True)
        recipes = {}  # recipe -> (its first n records per split, its label set)
        for recipe in CLOSED[skill]:
            of = {s: [r for r in splits[s] if r["template_id"].startswith(f"{recipe}.")]
                  for s in ("train", "validation")}  # fmt: skip
            recipes[recipe] = ({s: records[: args.n] for s, records in of.items()},
                               sorted({r["output"] for r in of["train"]}))  # fmt: skip
        model, tokenizer = load_base_model(None, dtype=torch.float32)
        model.eval()
        for recipe, (pick, labels) in recipes.items():
            row = {"base": {s: summary(correct(model, tokenizer, recs, labels)) for s, recs in pick.items()}}
            results.setdefault(skill, {})[recipe] = row
        folder = folders[skill] if not args.probe_epochs else probe_adapter(skill, recipes, args)
        model = PeftModel.from_pretrained(model, folder).eval()
        for recipe, (pick, labels) in recipes.items():
            row = results[skill][recipe]
            row["adapter"] = str(folder)
            row["skill"] = {s: summary(correct(model, tokenizer, recs, labels)) for s, recs in pick.items()}
            row["memorisation"] = memorisation(row)
            low, high = row["memorisation"]["interval"]
            print(f"{skill:30s} {recipe:26s} base {row['base']['train']['accuracy']:.3f} / "
                  f"{row['base']['validation']['accuracy']:.3f}  skill {row['skill']['train']['accuracy']:.3f} / "
                  f"{row['skill']['validation']['accuracy']:.3f} (train / held out)  "
                  f"memorisation {row['memorisation']['difference']:+.3f} "
                  f"[{low:+.3f}, {high:+.3f}]", flush=True)  # fmt: skip
        path.write_text(json.dumps({"skills": results, "skills_dir": args.skills_dir, "n": args.n,
                                    "probe": {"epochs": args.probe_epochs, "learning_rate": args.probe_rate}
                                    if args.probe_epochs else None,
                                    "scoring": "option log-likelihood, sum",
                                    "machine": {"cpu": cpu_description(), "threads": torch.get_num_threads()}},
                                   indent=1) + "\n")  # fmt: skip


if __name__ == "__main__":
    main()
