"""A baseline without a language model: answer each test record with the labels its context's entities had in training.

    python benchmarks/lookup_baseline.py [--tasks ddi_severity icd10cm_excludes_nli ...]

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
    parser.add_argument("--json", default=str(Path(__file__).parent / "results" / "lookup_baseline.json"))
    args = parser.parse_args()
    results = {}
    for task in args.tasks:
        splits = load_task(task, build_if_missing=True)
        train, test = list(splits["train"]), list(splits["test"])
        predictions = lookup_predictions(train, test)
        report = label_report(predictions, [r["output"] for r in test], train_references=[r["output"] for r in train])
        results[task] = {k: report[k] for k in ("accuracy", "macro_f1", "intervals", "prediction_counts", "baselines")}
        shown = " ".join(f"{k}={report[k]:.3f} [{report['intervals'][k][0]:.3f}, {report['intervals'][k][1]:.3f}]"
                         for k in ("accuracy", "macro_f1"))  # fmt: skip
        print(f"{task:30s} {shown} predicts {dict(report['prediction_counts'])}")
    Path(args.json).write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
