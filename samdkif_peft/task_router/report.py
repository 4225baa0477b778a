"""The report of `samdkif router train`: `report.json`, `report.md`, `predictions.jsonl`, `routing.png`, and a results
section in the router's model card.

Every number is recomputed here from the stored predictions (`eval/<variant>.json`), so the report and the
predictions file cannot disagree.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

from ..utils import atomic_write_text


VARIANT_TITLES = {"base": "base model", "router": "router", "task_lora": "task LoRA"}
_RESULTS_BEGIN, _RESULTS_END = "<!-- samdkif:task-results -->", "<!-- /samdkif:task-results -->"


def write_report(
    out: Path,
    spec,
    kind: str,
    dataset,
    evaluated: dict[str, dict],
    *,
    router: str,
    retrieve: int = 0,
    nearest: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Build the report from the stored evaluations, write every file, and return the report dict. `nearest`: the
    nearest training records' answers for every test record (`run._nearest_baseline`; cut here to the scored ones),
    a no-model baseline."""
    report = build_report(spec, kind, dataset, evaluated, router=router, out=out)
    if nearest:
        references = list(dataset["test"]["output"][: report["n_test"]])
        report.setdefault("baselines", {})["nearest"] = _nearest_scores(spec, kind, report, nearest, references)
    report["retrieve"] = retrieve
    if retrieve:
        from .retrieval import count_examples

        scored = dataset["test"].select(range(report["n_test"]))
        report["retrieved_examples"] = _example_counts([count_examples(r) for r in scored], retrieve)
    atomic_write_text(str(out / "report.json"), json.dumps(report, indent=2))
    atomic_write_text(str(out / "predictions.jsonl"), "".join(json.dumps(r) + "\n" for r in _rows(dataset, evaluated)))
    if report.get("routing"):
        plot_routing(report["routing"], out / "routing.png", title=f"{spec.name}: routing weights ({router})")
    markdown = render_markdown(report)
    atomic_write_text(str(out / "report.md"), markdown)
    _update_card(out / "README.md", markdown)
    return report


def _nearest_scores(spec, kind: str, report: dict, nearest: dict[str, Any], references: list[str]) -> dict:
    """The report's metrics, with intervals, of answering each test record with its nearest training records'
    answer (label tasks: their vote)."""
    from ..evaluation.likelihood import bootstrap_mean_interval, label_report
    from ..evaluation.scoring import score_task

    found = nearest["answers"][: report["n_test"]]  # the scored test records (None: no similar training record)
    answers = [a if a is not None else nearest["fallback"] for a in found]
    out: dict[str, Any] = {"neighbours": nearest["neighbours"], "unmatched": found.count(None)}
    if kind == "generation":
        rows = [score_task(spec, [a], [r]) for a, r in zip(answers, references)]
        for key in rows[0]:
            values = [row[key] for row in rows]
            out[key] = sum(values) / len(values)
            out.setdefault("intervals", {})[key] = bootstrap_mean_interval(values)
        return out
    scored = label_report(answers, references, labels=list(spec.labels) or None)
    out.update(accuracy=scored["accuracy"], macro_f1=scored["macro_f1"], intervals=scored["intervals"],
               prediction_counts=scored["prediction_counts"])  # fmt: skip
    return out


def _example_counts(counts: list[int], asked: int) -> dict[str, Any]:
    """How many retrieved examples the scored prompts carry (fewer than asked where a prompt would not fit)."""
    if not counts:
        return {"min": 0, "mean": 0.0, "fewer_than_asked": 0}
    return {"min": min(counts), "mean": round(sum(counts) / len(counts), 3),
            "fewer_than_asked": sum(c < asked for c in counts)}  # fmt: skip


def _answers(result: dict[str, Any]) -> tuple[list[str], list[str]]:
    """`(predictions, references)` a variant is judged on: option ranking where there is one, else generation."""
    if "options" in result:
        return result["options"]["predictions"], result["options"]["references"]
    generation = result["generation"]
    return [str(p) for p in generation["parsed"]], [str(r) for r in generation["references"]]


def build_report(spec, kind: str, dataset, evaluated: dict[str, dict], *, router: str, out: Path) -> dict[str, Any]:
    from ..evaluation.likelihood import bootstrap_mean_interval, label_report, paired_difference
    from ..training.common import RESULTS_FILE

    n_test = len(next(iter(evaluated.values()))["generation"]["predictions"])
    report: dict[str, Any] = {
        "task": spec.name,
        "kind": kind,
        "router": router,
        "labels": list(spec.labels),
        "n_train": len(dataset["train"]),
        "n_test": n_test,
        "n_test_available": len(dataset["test"]),
        "scoring": "option_log_likelihood/sum" if kind != "generation" else "generation",
        "metrics": {},
        "intervals": {},
        "seconds": {},
    }
    closed = kind != "generation"
    for variant, result in evaluated.items():
        metrics, intervals = {}, {}
        if closed:
            predictions, references = _answers(result)
            scored = label_report(predictions, references, labels=list(spec.labels) or None,
                                  train_references=_train_keys(spec, kind, dataset))  # fmt: skip
            metrics.update(accuracy=scored["accuracy"], macro_f1=scored["macro_f1"])
            intervals.update(scored["intervals"])
            report.setdefault("prediction_counts", {})[variant] = scored["prediction_counts"]
            report.setdefault("confusion", {})[variant] = confusion(predictions, references)
            report["reference_counts"] = scored["reference_counts"]
            report["baselines"] = scored["baselines"]
            calibrated = result.get("options", {}).get("report", {}).get("batch_calibrated")
            if calibrated:  # a second reading: each answer's mean score over the test prompts removed (likelihood.py)
                report.setdefault("batch_calibrated", {})[variant] = calibrated
            generated, gen_refs = result["generation"]["parsed"], result["generation"]["references"]
            gen = label_report([str(p) for p in generated], [str(r) for r in gen_refs], n_resamples=200)
            metrics.update(generation_accuracy=gen["accuracy"], generation_macro_f1=gen["macro_f1"])
        else:
            per_record = result["generation"]["per_record"]
            for key in per_record[0]:
                values = [row[key] for row in per_record]
                metrics[key] = sum(values) / len(values)
                intervals[key] = bootstrap_mean_interval(values)
        report["metrics"][variant] = metrics
        report["intervals"][variant] = intervals
        report["seconds"][f"score_{variant}"] = result.get("seconds")
    if closed and "base" in evaluated:
        references = _answers(evaluated["base"])[1]
        report["paired"] = {
            f"{a}_minus_{b}": paired_difference(_answers(evaluated[a])[0], _answers(evaluated[b])[0], references)
            for a, b in (("router", "base"), ("router", "task_lora"))
            if a in evaluated and b in evaluated
        }
    if "routing" in evaluated.get("router", {}):
        report["routing"] = evaluated["router"]["routing"]
    for variant, folder in (("router", out), ("task_lora", out / "baselines" / "task_lora")):
        path = folder / RESULTS_FILE
        if variant in evaluated and path.is_file():
            trained = json.loads(path.read_text())
            keep = ("global_step", "train_loss", "eval_loss", "train_runtime", "stage_seconds", "task_rank")
            report.setdefault("training", {})[variant] = {k: trained[k] for k in keep if k in trained}
    return report


def _train_keys(spec, kind: str, dataset) -> list[str]:
    """Training answers as the report compares them: the letter for multiple choice, else the label."""
    outputs = [o.strip() for o in dataset["train"]["output"]]
    if kind == "multiple_choice":
        return [o.strip("(")[:1] for o in outputs]
    return outputs


def confusion(predictions: list[str], references: list[str]) -> dict[str, dict[str, int]]:
    """reference -> predicted -> count."""
    table: dict[str, Counter] = {}
    for p, r in zip(predictions, references):
        table.setdefault(r, Counter())[p] += 1
    return {r: dict(c.most_common()) for r, c in sorted(table.items())}


def _rows(dataset, evaluated: dict[str, dict]):
    """One row per scored test record: the router's answer, the reference, option scores, the other variants."""
    test = dataset["test"]
    router = evaluated.get("router") or next(iter(evaluated.values()))
    n = len(router["generation"]["predictions"])
    for i in range(n):
        record = test[i]
        row: dict[str, Any] = {"index": i, "context": record["context"], "query": record["query"]}
        if "options" in router:
            row["reference"] = router["options"]["references"][i]
            row["prediction"] = router["options"]["predictions"][i]
        else:
            row["reference"] = record["output"]
            row["prediction"] = router["generation"]["predictions"][i]
        row["generation"] = router["generation"]["predictions"][i]
        if "options" in router:  # log-likelihood of each allowed answer (summed over its tokens)
            row["option_scores"] = dict(zip(router["options"]["options"][i], router["options"]["option_scores"][i]))
        for variant, result in evaluated.items():
            if variant != "router":
                row[f"{variant}_prediction"] = (
                    _answers(result)[0][i] if "options" in result else (result["generation"]["predictions"][i])
                )
        yield row


def render_markdown(report: dict[str, Any]) -> str:
    """The human-readable report: metrics with 95 % intervals, baselines, paired differences, counts, confusion."""
    lines = [f"# {report['task']}: skill router ({report['router']}) vs base model", ""]
    limited = report["n_test"] < report["n_test_available"]
    lines.append(
        f"Task kind **{report['kind']}**; {report['n_train']} training records; scored on "
        f"{report['n_test']} test records"
        + (f" (first {report['n_test']} of {report['n_test_available']})" if limited else " (all)")
        + "."  # fmt: skip
    )
    if report.get("retrieve"):
        counts = report.get("retrieved_examples") or {}
        fewer = (
            f" (fewer where fewer training records share a word or the prompt would pass the training length: "
            f"{counts['fewer_than_asked']} of "
            f"{report['n_test']} test prompts; mean {counts['mean']:.1f}, min {counts['min']})"
            if counts.get("fewer_than_asked")
            else ""
        )
        lines.append(
            f"Every prompt lists the {report['retrieve']} most similar training records with their answers "
            f"(`--retrieve`){fewer}; new prompts need the same, from the memory saved beside the router: "
            "`RetrievalMemory.from_pretrained(router_dir).add_examples(records, tokenizer)` "
            "(`samdkif_peft.task_router`)."
        )
    if report["kind"] != "generation":
        lines.append(
            "Accuracy and macro-F1 rank the allowed answers by log-likelihood (summed over the answer's tokens); "
            "`generation_*` score the greedy answer. Intervals: 95 % percentile bootstrap over test records."
        )
    lines.append("")
    metrics = report["metrics"]
    names = list(next(iter(metrics.values())))
    lines.append("| model | " + " | ".join(names) + " |")
    lines.append("|---" * (len(names) + 1) + "|")
    for variant, values in metrics.items():
        cells = []
        for name in names:
            interval = report["intervals"][variant].get(name)
            cell = f"{values[name]:.3f}"
            if interval:
                cell += f" [{interval[0]:.3f}, {interval[1]:.3f}]"
            cells.append(cell)
        lines.append(f"| {VARIANT_TITLES.get(variant, variant)} | " + " | ".join(cells) + " |")
    baselines = report.get("baselines") or {}
    if baselines.get("majority"):
        majority = baselines["majority"]
        cells = [f"{majority[n]:.3f}" if n in majority else "" for n in names]
        lines.append(f"| majority label ({majority['label']!r}) | " + " | ".join(cells) + " |")
    if baselines.get("nearest"):
        near = baselines["nearest"]
        cells = []
        for n in names:
            interval = near.get("intervals", {}).get(n)
            cells.append(f"{near[n]:.3f}" + (f" [{interval[0]:.3f}, {interval[1]:.3f}]" if interval else "")
                         if n in near else "")  # fmt: skip
        what = (f"vote of the {near['neighbours']} most similar training records' answers" if near["neighbours"] > 1
                else "the most similar training record's answer")  # fmt: skip
        lines.append(f"| no model: {what} (BM25) | " + " | ".join(cells) + " |")
    if baselines.get("chance"):
        lines.append(f"| chance | {baselines['chance']['accuracy']:.3f} |" + " |" * (len(names) - 1))
    for key, diff in (report.get("paired") or {}).items():
        a, b = key.split("_minus_")
        parts = [f"{m} {d['difference']:+.3f} [{d['interval'][0]:+.3f}, {d['interval'][1]:+.3f}]"
                 for m, d in diff.items()]  # fmt: skip
        lines += ["", f"Paired, {VARIANT_TITLES.get(a, a)} minus {VARIANT_TITLES.get(b, b)}: " + "; ".join(parts)]
    if report.get("batch_calibrated"):
        parts = [f"{VARIANT_TITLES.get(v, v)} {c['macro_f1']:.3f}" for v, c in report["batch_calibrated"].items()]
        lines += ["", "Batch-calibrated macro-F1 (each answer's mean log-likelihood over the test prompts removed, "
                  "so a bias towards one answer shared by every record does not count; docs/EVALUATION.md): "
                  + ", ".join(parts)]  # fmt: skip
    if report.get("prediction_counts"):
        labels = list(report["reference_counts"])
        labels += [p for c in report["prediction_counts"].values() for p in c if p not in labels]
        lines += ["", "## What each model answered", "", "| answer | test | " + " | ".join(
            VARIANT_TITLES.get(v, v) for v in report["prediction_counts"]) + " |"]  # fmt: skip
        lines.append("|---" * (len(report["prediction_counts"]) + 2) + "|")
        for label in labels[:30]:
            counts = [str(c.get(label, 0)) for c in report["prediction_counts"].values()]
            lines.append(f"| {label} | {report['reference_counts'].get(label, 0)} | " + " | ".join(counts) + " |")
        router = report["confusion"].get("router")
        if router:
            columns = labels[:12]
            lines += ["", "## Router confusion matrix (rows: reference, columns: prediction)", ""]
            lines.append("| reference | " + " | ".join(columns) + " |")
            lines.append("|---" * (len(columns) + 1) + "|")
            for ref in columns:
                if ref in router:
                    lines.append(f"| {ref} | " + " | ".join(str(router[ref].get(c, 0)) for c in columns) + " |")
    if report.get("routing"):
        routing = report["routing"]
        means = [sum(col) / len(col) for col in zip(*routing["weights"])]
        top = sorted(zip(routing["skills"], means), key=lambda x: -x[1])
        lines += ["", "## Routing", "", f"Mean weight per skill over {routing['records']} test prompts: "
                  + ", ".join(f"{s} {w:.3f}" for s, w in top) + ". Per layer: `routing.png`."]  # fmt: skip
    if report.get("training"):
        lines += ["", "## Training", ""]
        for variant, t in report["training"].items():
            details = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in t.items())
            lines.append(f"- {VARIANT_TITLES.get(variant, variant)}: {details}")
    return "\n".join(lines) + "\n"


def plot_routing(routing: dict[str, Any], path: Path, *, title: str) -> None:
    """Heat-map of the mean routing weight per layer (rows) and skill (columns)."""
    import matplotlib

    matplotlib.use("Agg")  # no display on a server
    import matplotlib.pyplot as plt

    weights, skills, layers = routing["weights"], routing["skills"], routing["layers"]
    fig, ax = plt.subplots(figsize=(1.0 + 0.55 * len(skills), 1.2 + 0.22 * len(layers)))
    image = ax.imshow(weights, aspect="auto", cmap="viridis")
    ax.set_xticks(range(len(skills)), skills, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(layers)), [str(layer) for layer in layers], fontsize=7)
    ax.set_ylabel("layer")
    ax.set_title(title, fontsize=9)
    fig.colorbar(image, ax=ax, label="mean weight")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _update_card(path: Path, markdown: str) -> None:
    """Put the report into the router's model card between markers (replaced on a re-run)."""
    if not path.is_file():
        return
    body = path.read_text()
    section = f"{_RESULTS_BEGIN}\n## Results on the task\n\n" + markdown.split("\n", 2)[2] + f"{_RESULTS_END}\n"
    if _RESULTS_BEGIN in body:
        body = re.sub(re.escape(_RESULTS_BEGIN) + ".*?" + re.escape(_RESULTS_END) + "\n?", lambda _: section, body,
                      flags=re.S)  # fmt: skip
    else:
        body = body.rstrip() + "\n\n" + section
    atomic_write_text(str(path), body)
