"""Score a model on a downstream task: option log-likelihood for closed answers, greedy generation for the rest.

    python examples/evaluate_task.py --task ddi_severity [--adapter runs/routers/ddi] [--limit 50]

Without `--adapter` it scores the base model; an adapter is any peft adapter folder (a skill router, a hybrid or a
plain LoRA). Prints the metrics with 95 % intervals, what was predicted how often, and the majority-label baseline.
(Not `evaluate.py`: run as a script, that name would shadow the `evaluate` library.)
"""

from __future__ import annotations

import argparse
import json

import samdkif_peft  # noqa: F401  (registers SKILL_ROUTER with peft)
from samdkif_peft.base_model import load_base_model, prepare_base_model
from samdkif_peft.data import load_task
from samdkif_peft.evaluation.generation import evaluate_task
from samdkif_peft.evaluation.likelihood import evaluate_options, scoreable


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="ddi_severity")
    parser.add_argument("--adapter", default=None, help="peft adapter folder or Hub id (default: the base model)")
    parser.add_argument("--base-model", default=None, help="default: the prepared SmolLM2")
    parser.add_argument("--limit", type=int, default=None, help="score the first N test records (default: all)")
    args = parser.parse_args()

    model, tokenizer = load_base_model(args.base_model or prepare_base_model())
    if args.adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, args.adapter)
    data = load_task(args.task)
    if scoreable(args.task):
        result = evaluate_options(model, tokenizer, args.task, data, limit=args.limit, progress=True)
        report = result["report"]
        print(json.dumps({k: report[k] for k in ("accuracy", "macro_f1", "intervals", "prediction_counts",
                                                 "baselines")}, indent=1))  # fmt: skip
    result = evaluate_task(model, tokenizer, args.task, data, limit=args.limit, progress=True)
    print(json.dumps({"generation": result["metrics"], "n": result["n"]}, indent=1))


if __name__ == "__main__":
    main()
