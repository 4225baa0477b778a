"""Score a trained `samdkif router train` hybrid with its skills switched off: what do the skills add to its task LoRA?

    python benchmarks/skills_off.py --run RUN --train train.jsonl --test test.jsonl [--validation validation.jsonl]

Loads the router folder as `train_task_router` left it, rebuilds the run's test prompts (its kind and `retrieve`
from `task.json`), and ranks the allowed answers by log-likelihood under `force_skill_weights({})` (base model + the
hybrid's own task LoRA), the same scoring as the run's report. Paired against the run's own option answers on the same
records. Writes `<run>/eval/router_skills_off.json` and prints macro-F1, accuracy and the answer counts.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True, help="a finished `samdkif router train --out` folder")
    parser.add_argument("--train", required=True, help="the run's --train file")
    parser.add_argument("--test", required=True, help="the run's --test file")
    parser.add_argument("--validation", default=None, help="the run's --validation file, if it had one")
    args = parser.parse_args()

    import datasets

    from samdkif_peft.base_model import resolve_base_model
    from samdkif_peft.evaluation.likelihood import evaluate_options, paired_difference
    from samdkif_peft.task_router.inputs import read_split
    from samdkif_peft.task_router.kinds import task_spec
    from samdkif_peft.task_router.run import _fingerprint, _with_retrieval
    from samdkif_peft.task_router.scoring import _load

    task = json.loads((args.run / "task.json").read_text())
    # the base the run trained on (its prompts were fitted with that tokenizer)
    base = json.loads((args.run / "adapter_config.json").read_text()).get("base_model_name_or_path") or (
        resolve_base_model(None)
    )
    if task["kind"] != "label":
        sys.exit(f"{args.run}: a {task['kind']} task; this reads label tasks (option log-likelihood) only")
    train, test = read_split(args.train, "train"), read_split(args.test, "test")
    validation = read_split(args.validation, "validation") if args.validation else None
    if task.get("retrieve"):  # prompts fitted to the training length, or as runs made before the fitting had them
        rebuilt = [
            _with_retrieval(task["retrieve"], b, train, test, validation, task.get("max_length"))[:3]
            for b in (base, None)
        ]
        train, test, validation = next((s for s in rebuilt if _fingerprint(*s) == task["data_sha256"]), rebuilt[0])
    if _fingerprint(train, test, validation) != task["data_sha256"]:
        sys.exit(f"{args.run}: --train/--test/--validation are not the run's data (task.json data_sha256)")
    spec = task_spec(task["name"], task["kind"], train)
    dataset = datasets.DatasetDict(train=train, test=test)
    model, tokenizer = _load(args.run, "router", base)
    with model.base_model.force_skill_weights({}):
        result = evaluate_options(model, tokenizer, spec, dataset, progress=True)
    own = json.loads((args.run / "eval" / "router.json").read_text())["options"]
    if own["references"] != result["references"]:
        sys.exit(f"{args.run}: the rebuilt test prompts do not match the run's (references differ)")
    paired = paired_difference(own["predictions"], result["predictions"], result["references"])
    out = args.run / "eval" / "router_skills_off.json"
    out.write_text(json.dumps({"variant": "router_skills_off", "options": result, "hybrid_minus_skills_off": paired},
                              indent=1))  # fmt: skip
    report = result["report"]
    print(f"skills off: macro-F1 {report['macro_f1']:.3f}, accuracy {report['accuracy']:.3f}, answers "
          f"{dict(Counter(result['predictions']).most_common())}; calibrated macro-F1 "
          f"{report['batch_calibrated']['macro_f1']:.3f}")  # fmt: skip
    for metric, diff in paired.items():
        print(f"hybrid minus skills off, {metric}: {diff['difference']:+.3f} [{diff['interval'][0]:+.3f}, "
              f"{diff['interval'][1]:+.3f}]")  # fmt: skip
    print(out)


if __name__ == "__main__":
    main()
