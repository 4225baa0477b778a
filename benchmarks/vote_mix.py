"""Does a model that reads retrieved neighbours add anything to counting their answers? (label tasks, `--retrieve N`)

A run with `samdkif router train --retrieve N` lists the N most similar training records (BM25) with their answers in
every prompt; its report already has the neighbours' vote with no model (`baselines.nearest`). This combines each
scored model's option log-likelihoods with that vote as a product of experts,

    score(option) = log p_model(option) + lam * log((votes(option) + 1) / (N + number of options)),

(p_model: the softmax of the summed option log-likelihoods over the options; lam = 0 is the model alone, a large lam
the vote with the model breaking its ties) and reports macro-F1 and accuracy for each lam, with the paired bootstrap
of lam = 1 (fixed, not tuned on the test records) minus the vote. No model runs: it reads the run's scores.

    python benchmarks/vote_mix.py --run runs/ddi-retrieval/r8fit-1ep --train $D/train.jsonl --test $D/test.jsonl \
        --out benchmarks/results/retrieval/r8fit-1ep/vote_mix.json

Models read: `eval/<variant>.json` of the run where it is there (base, router, task LoRA), else the router's option
scores in `predictions.jsonl` (a committed run's folder).
"""

from __future__ import annotations

import argparse
import json
import math
from collections import Counter
from pathlib import Path

import numpy as np

from samdkif_peft.evaluation.likelihood import _fast_scores, paired_bootstrap
from samdkif_peft.task_router.retrieval import neighbour_answers, vote


LAMBDAS = (0.0, 0.5, 1.0, 2.0, 4.0, 1000.0)


def read_jsonl(path: str) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def model_scores(run: Path) -> dict[str, tuple[list[list[str]], list[list[float]]]]:
    """variant -> (options per record, summed option log-likelihoods per record)."""
    found = {}
    for path in sorted((run / "eval").glob("*.json")):
        options = json.loads(path.read_text()).get("options")
        if options and options.get("option_scores"):
            found[path.stem] = (options["options"], options["option_scores"])
    if "router" not in found and (run / "predictions.jsonl").exists():
        rows = read_jsonl(str(run / "predictions.jsonl"))
        if rows and "option_scores" in rows[0]:
            scored = [r["option_scores"] for r in rows]
            found["router"] = ([list(o) for o in scored], [list(o.values()) for o in scored])
    return found


def mix(options, scores, counts, lam: float) -> list[str]:
    picks = []
    for opts, row, c in zip(options, scores, counts):
        top = max(row)
        log_z = top + math.log(sum(math.exp(s - top) for s in row))
        n = sum(c.values())
        mixed = [s - log_z + lam * math.log((c[o] + 1) / (n + len(opts))) for o, s in zip(opts, row)]
        picks.append(opts[int(np.argmax(mixed))])
    return picks


def scores_of(predictions, references) -> dict[str, float]:
    """Accuracy and macro-F1 as the run's report computes them."""
    return _fast_scores(np.asarray(predictions, dtype=object), np.asarray(references, dtype=object))


def paired_minus_vote(picks, votes, references) -> dict:
    a, v, r = (np.asarray(x, dtype=object) for x in (picks, votes, references))
    return paired_bootstrap(lambda pick: scores_of(a[pick], r[pick]), lambda pick: scores_of(v[pick], r[pick]), len(r))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="a `samdkif router train --retrieve N` output folder")
    parser.add_argument("--train", required=True, help="the run's training records, without retrieved examples")
    parser.add_argument("--test", required=True, help="the run's test records, without retrieved examples")
    parser.add_argument("--neighbours", type=int, default=None, help="default: the run's --retrieve (or 8)")
    parser.add_argument("--out", default=None, help="write the result here as JSON")
    args = parser.parse_args()
    run = Path(args.run)
    task = json.loads((run / "task.json").read_text())
    neighbours = args.neighbours or task.get("retrieve") or 8
    train, test = read_jsonl(args.train), read_jsonl(args.test)
    found = model_scores(run)
    if not found:
        raise SystemExit(f"{run}: no option scores in eval/*.json or predictions.jsonl; is it a label task's run?")
    references = [r["output"].strip() for r in test]
    answers = neighbour_answers(test, train, neighbours)
    counts = [Counter(a) for a in answers]
    fallback = Counter(r["output"].strip() for r in train).most_common(1)[0][0]  # as the report: nothing similar
    votes = [v if (v := vote(a)) is not None else fallback for a in answers]
    result = {"run": str(run), "neighbours": neighbours, "n_test": len(test), "lambdas": list(LAMBDAS),
              "vote": scores_of(votes, references), "models": {}}  # fmt: skip
    print(f"neighbours' vote (N={neighbours}): {result['vote']}")
    for variant, (options, scores) in found.items():
        if len(options) != len(test):
            raise SystemExit(f"{run}: {variant} scored {len(options)} records, the test file has {len(test)}")
        by_lam = {str(lam): mix(options, scores, counts, lam) for lam in LAMBDAS}
        entry = {lam: {**scores_of(p, references), "answers": dict(Counter(p).most_common())}
                 for lam, p in by_lam.items()}  # fmt: skip
        entry["lam=1 minus vote"] = paired_minus_vote(by_lam["1.0"], votes, references)
        result["models"][variant] = entry
        line = ", ".join(f"lam {lam}: {entry[lam]['macro_f1']:.3f}" for lam in by_lam)
        diff = entry["lam=1 minus vote"]["macro_f1"]
        print(f"{variant}: macro-F1 {line}; lam 1 - vote {diff['difference']:+.3f} "
              f"[{diff['interval'][0]:+.3f}, {diff['interval'][1]:+.3f}]")  # fmt: skip
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
