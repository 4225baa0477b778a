"""Does calibrating the option scores stop the label tasks' collapse? Batch calibration over the committed cells.

    python benchmarks/option_calibration.py [--tasks ddi_severity ...]

Batch calibration (Zhou et al., "Batch Calibration: Rethinking Calibration for In-Context Learning and Prompt
Engineering", ICLR 2024) subtracts each option's mean log-likelihood over the test prompts before picking the best
one: label-free, no model run, a fix for a model whose scores favour one label on every record. It is read here from
the `option_scores` every committed cell stores (options by position: the label set, or the letters of a
multiple-choice record), for every variant of the released-skills study (all records, seed 42) and of the few-shot
curve, next to the macro-F1 of guessing uniformly at random over the labels (the level a calibration that only
spreads the answers reaches). Writes `results/option_calibration.json`.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from pathlib import Path

import numpy as np


HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
sys.path.insert(0, str(HERE.parent))
TASKS = ("ddi_severity", "icd10cm_excludes_nli", "icd10cm_chapter_classification", "rare_disease_diagnosis")
COMPARED = ("hybrid@lr5e-3", "hybrid@prior-lr5e-3", "router@lr5e-3")  # each against the task LoRA of its cells
FOLDERS = {
    "all records": RESULTS / "label_tasks_released",
    "few-shot curve": RESULTS / "few_shot",
    "levers": RESULTS / "hybrid_levers",
    "DDI knowledge skill": RESULTS / "ddi_knowledge",  # 12 released skills + one that knows drug pairs (section 16)
}
TASK_LORA = "task_lora@lr5e-3"
# (source, variant, source of the baseline, baseline) beyond COMPARED x FOLDERS: the knowledge skill's hybrid
# against its control with the same shape (13th skill = relation extraction again) and against the curve's task LoRA
EXTRA = (
    ("DDI knowledge skill", "hybrid@lr5e-3", "DDI knowledge skill", "hybrid@ctl-lr5e-3"),
    ("DDI knowledge skill", "hybrid@lr5e-3", "few-shot curve", TASK_LORA),
    ("DDI knowledge skill", "hybrid@lr5e-3", "all records", TASK_LORA),
)


@functools.cache
def _read(path: Path) -> dict:
    """A committed cell, parsed once per run (the pooled comparisons read the same cells again)."""
    return json.loads(path.read_text())


def _options(cell: dict) -> list[list[str]]:
    options = cell["options"]
    return [options["every record"]] * cell["n"] if isinstance(options, dict) else options


@functools.cache
def batch_calibrated(path: Path) -> tuple[str, ...]:
    """The answers of the cell at `path` after `batch_calibrate` (each option position's mean score over the test
    records removed), read as the cell's predictions are (`_answer_key`: the letter of a multiple-choice option)."""
    from samdkif_peft.data.tasks import TASKS
    from samdkif_peft.evaluation.likelihood import _answer_key, batch_calibrate

    cell, spec = _read(path), TASKS[path.parent.name]
    picks = batch_calibrate(cell["option_scores"])
    return tuple(_answer_key(spec, options[j]) for options, j in zip(_options(cell), picks))


def uniform_guess_macro_f1(references: list[str]) -> float:
    """Expected macro-F1 (to first order) of answering each of the reference labels with equal probability."""
    labels, counts = np.unique(np.asarray(references, dtype=object), return_counts=True)
    guessed = len(references) / len(labels)
    return float(np.mean([2 * (c / len(labels)) / (guessed + c) for c in counts]))


def pooled(
    rows: list[dict],
    root: Path,
    variant: str,
    *,
    baseline_root: Path | None = None,
    baseline: str = TASK_LORA,
    n_resamples: int = 1000,
) -> dict:
    """(budget, task) -> `variant` minus `baseline` (the task LoRA of the same cells by default; `baseline_root`: a
    folder of the same budgets, seeds and test records), raw and batch-calibrated (macro-F1; rare disease: accuracy),
    mean over the seeds that have both cells, with one paired bootstrap of the test records shared by every seed."""
    from samdkif_peft.evaluation.likelihood import _fast_scores, paired_bootstrap

    groups: dict = {}
    for row in rows:
        if row["variant"] == variant and row["root"] == str(root):
            budget, seed, task, _ = row["cell"].split("/")
            other = (baseline_root or root) / budget / seed / task / f"{baseline}.json"
            if other.is_file():
                if _read(other)["references"] != _read(root / row["cell"])["references"]:
                    raise ValueError(f"{other} and {root / row['cell']} were scored on different test records")
                groups.setdefault((budget, task), []).append((root / row["cell"], other))
    out = {}
    for (budget, task), pairs in sorted(groups.items(), key=lambda item: (len(item[0][0]), item[0])):  # k=16 first
        references = np.asarray(_read(pairs[0][0])["references"], dtype=object)
        metric = "accuracy" if task == "rare_disease_diagnosis" else "macro_f1"  # the curve's primary metrics
        result = {"seeds": len(pairs), "metric": metric, "baseline": baseline}
        for name, read in (("raw", lambda path: _read(path)["predictions"]), ("calibrated", batch_calibrated)):
            answers = [[np.asarray(read(path), dtype=object) for path in pair] for pair in pairs]

            def side(i: int, answers=answers, metric=metric, references=references):
                def score(pick) -> dict[str, float]:  # the mean over seeds on the same resampled records
                    values = [_fast_scores(a[i][pick], references[pick])[metric] for a in answers]
                    return {metric: float(np.mean(values))}

                return score

            every = np.arange(len(references))
            diff = paired_bootstrap(side(0), side(1), len(references), n_resamples=n_resamples)[metric]
            result[name] = {"variant": side(0)(every)[metric], "baseline": side(1)(every)[metric], **diff}
        out[f"{budget} {task}"] = result
    return out


def main() -> None:
    from samdkif_peft.evaluation.likelihood import _fast_scores

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    args = parser.parse_args()
    rows = []
    for source, root in FOLDERS.items():
        for path in sorted(root.glob("k=*/seed=*/*/*.json")):
            task = path.parent.name
            cell = _read(path)
            if task not in args.tasks or "option_scores" not in cell:
                continue
            references = np.asarray(cell["references"], dtype=object)
            raw = _fast_scores(np.asarray(cell["predictions"], dtype=object), references)
            calibrated = batch_calibrated(path)
            fixed = _fast_scores(np.asarray(calibrated, dtype=object), references)
            rows.append({
                "source": source, "root": str(root), "cell": str(path.relative_to(root)), "task": task,
                "variant": path.stem,
                "macro_f1": raw["macro_f1"], "calibrated_macro_f1": fixed["macro_f1"], "accuracy": raw["accuracy"],
                "calibrated_accuracy": fixed["accuracy"], "labels_answered": len(set(cell["predictions"])),
                "calibrated_labels_answered": len(set(calibrated)),
                "uniform_guess_macro_f1": uniform_guess_macro_f1(cell["references"]),
            })  # fmt: skip
    for row in rows:
        print(f"{row['cell']:70s} macro-F1 {row['macro_f1']:.3f} -> {row['calibrated_macro_f1']:.3f} "
              f"(accuracy {row['accuracy']:.3f} -> {row['calibrated_accuracy']:.3f}; labels answered "
              f"{row['labels_answered']} -> {row['calibrated_labels_answered']}; uniform guess "
              f"{row['uniform_guess_macro_f1']:.3f})")  # fmt: skip
    summary = {}
    comparisons = [(source, variant, source, TASK_LORA) for source in FOLDERS for variant in COMPARED]
    for source, variant, baseline_source, baseline in comparisons + list(EXTRA):
        results = pooled(rows, FOLDERS[source], variant, baseline_root=FOLDERS[baseline_source], baseline=baseline)
        for group, result in results.items():
            against = baseline if baseline_source == source else f"{baseline_source}: {baseline}"
            name = f"{source}: {group} {variant}" + ("" if against == TASK_LORA else f" vs {against}")
            summary[name] = {"source": source, "budget": group.split(" ")[0], "task": group.split(" ")[1],
                             "variant": variant, "against": against, **result}  # fmt: skip
            raw, fixed = result["raw"], result["calibrated"]
            print(f"{name} ({result['seeds']} seeds), {result['metric']}: raw {raw['variant']:.3f} - "
                  f"{raw['baseline']:.3f} = {raw['difference']:+.3f}; calibrated {fixed['variant']:.3f} - "
                  f"{fixed['baseline']:.3f} = {fixed['difference']:+.3f} [{fixed['interval'][0]:+.3f}, "
                  f"{fixed['interval'][1]:+.3f}]")  # fmt: skip
    out = RESULTS / "option_calibration.json"
    payload = {"method": "batch calibration (test-set mean per option position)", "pooled": summary, "cells": rows}
    out.write_text(json.dumps(payload, indent=1) + "\n")
    print(out)


if __name__ == "__main__":
    main()
