"""A baseline without a language model: answer each test record with the labels its context's entities had in training.

    python benchmarks/lookup_baseline.py [--tasks ddi_severity icd10cm_excludes_nli ...]
    python benchmarks/lookup_baseline.py --tasks ddi_severity --split skill_train task_train  # per bucket range
    python benchmarks/lookup_baseline.py --tasks ddi_severity --k 16 64 --seeds 1 2 3  # the few-shot curve's samples

Every `Key: value` line of a context (or the whole line when it has no key) is an entity; a test record gets the
label its entities carried most often among the training records (counts summed over its entities), and the
training majority label when none of them was seen. On DDI severity the entities are the two drugs, so this is
"what severity do interactions of these drugs usually have", the memorisation a 135M model has to do from the
prompt. It sets the bar a learned model should clear, beside the majority label; docs/MEDICAL_VALUE.md reads it.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter, defaultdict
from pathlib import Path


def entities(context: str) -> list[str]:
    return [line.split(":", 1)[-1].strip().lower() for line in context.splitlines() if line.strip()]


def lookup_predictions(train: list[dict], test: list[dict]) -> list[str]:
    seen: dict[str, Counter] = defaultdict(Counter)
    for record in train:
        for entity in entities(record["context"]):
            seen[entity][record["output"]] += 1
    majority = Counter(r["output"] for r in train).most_common(1)[0][0]
    predictions = []
    for record in test:
        votes = Counter()
        for entity in entities(record["context"]):
            votes.update(seen.get(entity, {}))
        predictions.append(votes.most_common(1)[0][0] if votes else majority)
    return predictions


def main() -> None:
    from samdkif_peft.data.build import load_task
    from samdkif_peft.evaluation.likelihood import label_report

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=["ddi_severity", "icd10cm_excludes_nli"])
    parser.add_argument("--split", nargs="*", default=[], help="look up only training records of these bucket "
                        "ranges, one at a time: skill_train, task_train (unseen tasks train on both)")  # fmt: skip
    parser.add_argument("--k", type=int, nargs="*", default=[], help="look up k training records (seeded shuffle)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3], help="samples for --k")
    parser.add_argument("--json", default=None, help="default: results/lookup_baseline.json for the full lookup")
    args = parser.parse_args()
    default_json = Path(__file__).parent / "results" / "lookup_baseline.json"
    if args.json is None and (args.split or args.k):
        args.json = str(default_json.with_name("lookup_baseline_subsets.json"))
    results = {}
    for task in args.tasks:
        splits = load_task(task, build_if_missing=True)
        test = list(splits["test"])
        samples = {"all": list(splits["train"])}
        if args.split or args.k:
            samples = {f"split={b}": [r for r in splits["train"] if r.get("split") == b] for b in args.split}
        for k in args.k:
            samples.update({f"k={k}, seed={s}": list(splits["train"].shuffle(seed=s).select(range(k)))
                            for s in args.seeds})  # fmt: skip
        for name, train in samples.items():
            predictions = lookup_predictions(train, test)
            report = label_report(predictions, [r["output"] for r in test],
                                  train_references=[r["output"] for r in train])  # fmt: skip
            row = {k: report[k] for k in ("accuracy", "macro_f1", "intervals", "prediction_counts", "baselines")}
            row["train_records"] = len(train)
            results.setdefault(task, {})[name] = row
            shown = " ".join(f"{k}={report[k]:.3f} [{report['intervals'][k][0]:.3f}, {report['intervals'][k][1]:.3f}]"
                             for k in ("accuracy", "macro_f1"))  # fmt: skip
            print(f"{task:30s} {name:20s} {shown} predicts {dict(report['prediction_counts'])}")
    if list(samples) == ["all"]:  # the full lookup keeps its original layout: one row per task
        results = {task: rows["all"] for task, rows in results.items()}
    Path(args.json or default_json).write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
