"""Score a `samdkif router train` run's generated answers with one of our registered tasks' own metrics.

    python benchmarks/task_metric.py --run RUN --task elixhauser_comorbidity --train train.jsonl --test test.jsonl

A user's task is scored with generic metrics (ROUGE-L, exact match, token F1 for generation); one of our tasks run
through the CLI (e.g. with `--retrieve`) is read by its own metric here, comparable with the study's cells: the
greedy answers in `<run>/predictions.jsonl` (hybrid, task LoRA, base model) parsed and scored as
`study_label_tasks.generated_report` scores them (micro-F1 of Elixhauser's flags, with 95 % bootstrap intervals,
the most frequent answers and the no-model baselines over the run's training records, and the most similar
training record's answer as one more), the hybrid minus the task LoRA
paired over the same records. `--train` / `--test`: the run's files, without retrieved examples (the rule baselines
read the records' own contexts). Writes `<run>/task_metric.json`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


MODELS = {"hybrid": "generation", "task_lora": "task_lora_prediction", "base": "base_prediction"}  # greedy answers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True, help="a finished `samdkif router train --out` folder")
    parser.add_argument("--task", required=True, help="the registered task the run's data came from")
    parser.add_argument("--train", required=True, help="the run's --train file")
    parser.add_argument("--test", required=True, help="the run's --test file")
    args = parser.parse_args()

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from study_label_tasks import generated_report, paired_generated

    from samdkif_peft.evaluation.parsing import resolve_task
    from samdkif_peft.task_router.inputs import read_split

    spec = resolve_task(args.task)
    train, test = read_split(args.train, "train"), read_split(args.test, "test")
    rows = [json.loads(line) for line in (args.run / "predictions.jsonl").read_text().splitlines()]
    if [r["reference"] for r in rows] != list(test["output"][: len(rows)]):
        sys.exit(f"{args.run}: --test is not the run's test file (the references differ)")
    test = test.select(range(len(rows)))
    router = json.loads((args.run / "task.json").read_text())["router"]  # hybrid unless the run named another
    models = {}
    for name, key in MODELS.items():
        if key in rows[0]:
            name = router if name == "hybrid" else name
            models[name] = generated_report(spec, [r[key] for r in rows], test, train)
    # no model: the most similar training record's answer, as the run's report computes it for a generation task
    from samdkif_peft.task_router.run import _nearest_baseline

    nearest = _nearest_baseline("generation", train, test, 0)
    answers = [a if a is not None else nearest["fallback"] for a in nearest["answers"]]
    models["nearest_record"] = generated_report(spec, answers, test, train)
    paired = {}
    if "task_lora" in models:
        paired[f"{router} - task_lora"] = paired_generated(spec, models[router]["per_record"],
                                                           models["task_lora"]["per_record"])  # fmt: skip
    result = {"task": spec.name, "run": str(args.run), "n_test": len(rows), "paired": paired,
              "models": {n: {k: v for k, v in m.items() if k != "per_record"} for n, m in models.items()}}  # fmt: skip
    (args.run / "task_metric.json").write_text(json.dumps(result, indent=1))
    for name, report in models.items():
        metric = spec.metric
        low, high = report["intervals"][metric]
        print(f"{name}: {metric} {report[metric]:.3f} [{low:.3f}, {high:.3f}]")
    for name, diff in paired.items():
        d = diff[spec.metric]
        print(f"{name}: {d['difference']:+.3f} [{d['interval'][0]:+.3f}, {d['interval'][1]:+.3f}]")
    print(f"no model: {json.dumps(next(iter(models.values()))['baselines'])}")


if __name__ == "__main__":
    main()
