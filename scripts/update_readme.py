"""Refresh the generated sections of README.md from the project's own outputs.

    python scripts/update_readme.py

- `<!-- results:scoreboard -->`: every task on one row (label_tasks_released.json, main_job, few_shot.json)
- `<!-- results:main_job -->`: benchmarks/results/main_job/ (from `bash scripts/main_job.sh`)
- `<!-- results:quickstart -->`: benchmarks/results/quickstart.json (from `examples/quickstart.py`)
- `<!-- results:bench_router -->`: benchmarks/results/router_speed.json (from `benchmarks/bench_router.py`)
- `<!-- results:bench_data -->`: benchmarks/results/data_build.json (from `benchmarks/bench_data.py`)
- `<!-- results:few_shot -->`: benchmarks/results/few_shot.json (from `benchmarks/few_shot_curve.py`)
- `<!-- results:calibration -->`: benchmarks/results/option_calibration.json (from `benchmarks/option_calibration.py`)
- `<!-- results:hybrid_levers -->`: benchmarks/results/hybrid_levers.json (from `benchmarks/hybrid_levers.py`)
- `<!-- results:label_tasks_released -->`: benchmarks/results/label_tasks_released.json (the released skills)
- `<!-- results:label_tasks -->`: benchmarks/results/label_tasks.json (from `benchmarks/study_label_tasks.py`)
- `<!-- include:docs/DATA.md -->`: the data documentation
"""

from __future__ import annotations

import functools
import json
import re
import sys
import textwrap
from pathlib import Path
from typing import NamedTuple


ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))  # the benchmarks own the tables they render
RESULTS = ROOT / "benchmarks" / "results"


def main_job() -> str:
    """The main job's printed table and answer counts (its report.md up to the confusion matrix) and wall time."""
    folder = RESULTS / "main_job"
    if not (folder / "report.md").is_file():
        return "_Run `bash scripts/main_job.sh` to measure the main job._"
    timing = json.loads((folder / "timing.json").read_text())
    report = (folder / "report.md").read_text().split("\n## Router confusion matrix")[0]
    body = report.split("\n", 1)[1].strip().replace("\n## ", "\n#### ")
    minutes, seconds = divmod(timing["wall_seconds"], 60)
    lines = [
        f"### Main job: `{timing['command']}` (DDI severity, unseen; {minutes} min {seconds:02d} s on "
        f"{timing['cpu_count']} CPU cores, commit {timing['commit']})",
        "",
        body,
        "",
        "Full report with intervals, confusion matrix and routing: `benchmarks/results/main_job/report.md`, "
        "`routing.png`.",
    ]
    return "\n".join(lines)


def few_shot() -> str:
    """Unseen tasks at k training records: each variant's primary metric, mean and range over the seeds run so far."""
    from few_shot_curve import PRIMARY, baseline, curve_runs  # what each task is read by, its do-nothing baseline

    runs = curve_runs()
    if not any(not budget.startswith("k=all,") for budget in runs):
        return "_Run `python benchmarks/few_shot_curve.py --skills-dir release/skills` to measure the few-shot curve._"
    ks = sorted({b.split(",")[0] for b in runs}, key=lambda k: (k == "k=all", int(k[2:]) if k[2:].isdigit() else 0))
    lines = [
        "### Few-shot, unseen tasks (`benchmarks/few_shot_curve.py`, 12 released skills)",
        "",
        "Primary metric per task (DDI: macro-F1, since always answering the majority label scores accuracy 0.444; "
        "rare disease: accuracy over 4 options, chance 0.25; Elixhauser: micro-F1 of the generated flags), all test "
        "records, label tasks by option log-likelihood. Each cell: mean over seeds [min, max] (seeds). Every trained "
        "variant has the same k records, steps (30 / 60 / 100 / one epoch for k = 16 / 64 / 256 / all) and rate "
        "5e-3; `k=all` is the released-skills study's seed 42 (the scoreboard's cells). The hybrid starts from the "
        "uniform mix here (its default start: the scoreboard). Figure: `benchmarks/results/few_shot.png`.",
        "",
        "| task | variant | " + " | ".join(ks) + " |",
        "|---|---|" + "---|" * len(ks),
    ]
    tasks = [t for t in PRIMARY if any(t in rows for rows in runs.values())]
    for task in tasks:
        metric = PRIMARY[task]
        variants = sorted({v for rows in runs.values() for v in rows.get(task, {}) if not v.startswith("_")})
        for variant in variants:
            cells = []
            for k in ks:
                values = [rows[task][variant][metric] for b, rows in runs.items()
                          if b.split(",")[0] == k and variant in rows.get(task, {})]  # fmt: skip
                mean = sum(values) / len(values) if values else None
                spread = f" [{min(values):.3f}, {max(values):.3f}]" if len(values) > 1 else ""
                cells.append(f"{mean:.3f}{spread} ({len(values)})" if values else "")
            lines.append(f"| {task} | {variant.split('@')[0]} | " + " | ".join(cells) + " |")
        name, value = baseline(task, next(rows[task]["_baselines"] for rows in runs.values() if task in rows), metric)
        shown = "-" if value is None else f"{value:.3f}"
        lines.append(f"| {task} | {name} | " + " | ".join(shown for _ in ks) + " |")
    return "\n".join(lines)


SEEN_ORDER = ("icd10cm_excludes_nli", "icd10cm_chapter_classification", "hpo_definition_qa", "drug_disease_ner",
              "pubmed_conclusion_extraction", "pubmed_title_generation")  # fmt: skip
BOARD = ("base_best", "uniform", "own_skill", "router", "own_skill_lora", "task_lora", "hybrid_uniform", "hybrid")
ROUTER_ALONE = "router@gmodel-lr5e-3"  # the router alone as `train_router(task_rank=0)` trains it: one gate


def hybrid_levers() -> str:
    """The hybrid's levers, one at a time over seeds (rendered by the benchmark that measures them)."""
    from hybrid_levers import render

    return render()


def _primary(task: str) -> str:
    from few_shot_curve import PRIMARY

    from samdkif_peft.data import TASKS

    spec = TASKS[task]  # label tasks by macro-F1: accuracy rewards always answering the majority label
    return PRIMARY.get(task, "macro_f1" if spec.output_format == "label" else spec.metric)


def _board_row(variants: dict, metric: str, default: str | None = None) -> dict:
    """Variant -> score for the scoreboard's columns (the base model's best prompt among those measured; `hybrid`:
    the `default` cell, `hybrid_uniform`: the uniform-start hybrid at the study's rate)."""
    scores = {v.split("@")[0]: row[metric] for v, row in variants.items()  # the rate-5e-3 runs, no other tags
              if not v.startswith("_") and v.partition("@")[2] in ("", "lr5e-3") and metric in row}  # fmt: skip
    base = [scores[v] for v in ("base", "base_chat", "base_3shot") if v in scores]
    row = {"base_best": max(base) if base else None, **{v: scores.get(v) for v in BOARD[1:-2]}}
    if metric in variants.get(ROUTER_ALONE, {}):  # the router alone's default (one gate), else its per-module cell
        row["router"] = variants[ROUTER_ALONE][metric]
    elif row["router"] is not None:
        row["router_mark"] = "*"
    row["hybrid_uniform"] = scores.get("hybrid")
    row["hybrid"] = variants[default].get(metric) if default in variants else None
    return row


@functools.cache
def _load(name: str) -> dict:
    """A results JSON of `benchmarks/results/`, read once per run ({} when it does not exist)."""
    path = RESULTS / name
    return json.loads(path.read_text()) if path.is_file() else {}


def _prior_applies(task: str, seed: int, k: int = 64) -> bool | None:
    """Whether train_router's skill prior applies to these training records (`skill_prior_guard.json`; seed 42 at
    k 64: the all-records cells' first 64), None where not measured."""
    row = _load("skill_prior_guard.json").get(f"{task}:{seed}" + ("" if k == 64 else f":k={k}"))
    return None if row is None else row["prior_applies"]


def _default_hybrid(variants, applies: bool | None, gated: tuple[str, ...]) -> str | None:
    """The cell of the hybrid as `train_router` trains it by default: where the prior does not apply to these records
    the uniform-start cell (the same training), else a cell made with the guarded prior (`gated`), or an
    always-applied prior cell where the prior applies (again the same training); None where the start is unknown."""
    if applies is False and "hybrid@lr5e-3" in variants:
        return "hybrid@lr5e-3"
    for cell in gated:
        if cell in variants:
            return cell
    return "hybrid@prior-lr5e-3" if applies and "hybrid@prior-lr5e-3" in variants else None


def _no_model(task: str, baselines: dict, metric: str, lookup: str | None = None) -> float | None:
    """The best no-model baseline: the cell's own (majority label, a rule) or, with `lookup` ("all records" or
    "k=K, seed=S"), `benchmarks/lookup_baseline.py`'s entity lookup over the same training records."""
    values = [b.get(metric) for b in baselines.values() if isinstance(b, dict) and b.get(metric) is not None]
    if lookup == "all records":
        values.append(_load("lookup_baseline.json").get(task, {}).get(metric))
    elif lookup:
        values.append(_load("lookup_baseline_subsets.json").get(task, {}).get(lookup, {}).get(metric))
    values = [v for v in values if v is not None]
    return max(values) if values else None


class BoardRow(NamedTuple):
    """One scoreboard row: the table's columns, then what `targets` reads (the paired difference behind `diff`; for
    the study's all-record rows also its cells and the default hybrid's cell name)."""

    task: str
    seen: bool
    budget: str
    metric: str
    no_model: float | None
    board: dict
    diff: str
    pair: dict | None = None
    variants: dict | None = None
    default: str | None = None


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def _difference(pair: dict) -> str:
    return f"{pair['difference']:+.3f} [{pair['interval'][0]:+.3f}, {pair['interval'][1]:+.3f}]"


def scoreboard() -> str:
    """Every task on one row: the no-model baseline, the base model's best prompt, uniform, own skill, the task LoRA,
    the hybrid with a uniform start and as `train_router` trains it by default, on each task's primary metric, and
    the paired default-hybrid-minus-task-LoRA difference. Every task with all training records
    (`label_tasks_released.json`; the means use these rows only), the main job's own run, the unseen tasks at k <= 64
    (mean over seeds; the levers' re-runs where they exist, else the few-shot curve's cells). Draws
    `benchmarks/results/scoreboard.png`."""
    released = RESULTS / "label_tasks_released.json"
    if not released.is_file():
        return "_Run `python benchmarks/study_label_tasks.py --skills-dir release/skills` to fill the scoreboard._"
    runs = json.loads(released.read_text())["runs"].get("k=all, seed=42", {})
    rows = []  # (task, seen, budget, metric, no-model, {variant: score}, difference text)
    for task in [t for t in SEEN_ORDER if t in runs] + [t for t in runs if t not in SEEN_ORDER]:
        variants, metric = runs[task], _primary(task)
        default = _default_hybrid(variants, _prior_applies(task, 42), gated=("hybrid@prior-lr5e-3",))
        pair = variants.get("_paired", {}).get(f"{default} - task_lora@lr5e-3", {}).get(metric)
        diff = _difference(pair) if pair else "-"
        no_model = _no_model(task, variants.get("_baselines", {}), metric, lookup="all records")
        board = _board_row(variants, metric, default)
        rows.append(BoardRow(task, task in SEEN_ORDER, "all", metric, no_model, board, diff, pair, variants, default))
    # the product's command on its task, and with retrieved training records in the prompt: rows of their own
    retrieval_runs = RESULTS / "retrieval"
    own_runs = {"all (main job)": RESULTS / "main_job" / "report.json",
                "all (`--retrieve 8`, 1 epoch, unfitted prompts)": retrieval_runs / "r8-1ep" / "report.json",
                "all (`--retrieve 8`, 1 epoch, seed 42)": retrieval_runs / "r8fit-1ep" / "report.json",
                "all (`--retrieve 8`, 1 epoch, seed 2)": retrieval_runs / "r8fit-1ep-seed2" / "report.json",
                }  # fmt: skip
    for budget, path in own_runs.items():
        if not path.is_file():
            continue
        report = json.loads(path.read_text())
        metric, scores = _primary(report["task"]), report["metrics"]
        pair = report["paired"]["router_minus_task_lora"][metric]
        rows.append(BoardRow(report["task"], False, budget, metric,
                             _no_model(report["task"], report["baselines"], metric, lookup="all records"),
                             {"base_best": scores["base"][metric], "hybrid": scores["router"][metric],
                              "task_lora": scores["task_lora"][metric]},
                             _difference(pair), pair))  # fmt: skip
    rows += _few_shot_rows()
    lines = [
        "### Scoreboard: every task against what a user would pick instead (12 released skills)",
        "",
        "Each task's primary metric on all test records (label tasks: macro-F1, as always answering the majority "
        "label scores accuracy 0.637 on NLI and 0.444 on DDI; accuracies are in the tables below). *No model*: the "
        "best of the majority answer and, where one exists, a rule with no model (NER: a dictionary of training "
        "mentions; Elixhauser: the nearest training code's flags; DDI and the ICD label tasks: each entity's most "
        "frequent training label over the same training records, `benchmarks/lookup_baseline.py`; chance for rare "
        "disease's shuffled options). *Base*: the base model's best prompt among those measured (the retrieval row: "
        "the base model on that row's prompts). "
        "*Router alone*: the paper's method, the sequence router over the 12 frozen skills with no task adapter, "
        "as `train_router(task_rank=0)` trains it by default (one gate for every module, `gate_scope='model'`); "
        "\\* marks the cells measured only with a gate per module (the default before session 34; on the seven tasks "
        "measured both ways one gate was ahead on NLI, +0.186, behind on Elixhauser, -0.059, and level on the rest). "
        "*Own skill + LoRA*: a task LoRA trained on top of the task's own frozen skill, no router. "
        "*Hybrid (default)*: the router + task LoRA as `train_router` trains it by default, starting from the skill "
        "prior where the best skill's answer loss on the first 64 training records is at least 7 % below the uniform "
        "mix's and from the uniform mix where it is not (`docs/DEFAULTS.md`); *uniform start*: the same hybrid "
        "started from the uniform mix, the default before the prior (the two are one training where the prior does "
        "not apply); '-': not measured yet. "
        "Hybrid minus task LoRA: the default hybrid, paired bootstrap over the same test records (few-shot rows: the "
        "difference averaged over seeds, with one bootstrap of the test records shared by every seed, which covers "
        "the test records' sampling but not the draw of the k training records; then in how many seeds the hybrid "
        "was ahead). The cells were made over several sessions on two CPUs, an AMD EPYC and then an Intel Xeon with "
        "AMX (each cell records its CPU since session 26); the same code and seed train differently on their bf16 "
        "kernels, so two cells from different CPUs differ like two seeds (`docs/DEFAULTS.md`). Few-shot rows marked "
        "*re-run* have every cell from one CPU (the levers' re-runs); the others are the few-shot curve's first "
        "cells, with prior cells from the later CPU. Details in the tables below and "
        "`docs/MEDICAL_VALUE.md`; figure: `benchmarks/results/scoreboard.png`.",
        "",
        "| task | seen | training records | metric | no model | base | uniform | own skill | router alone | "
        "own skill + LoRA | "
        "task LoRA | hybrid, uniform start | hybrid (default) | hybrid (default) - task LoRA [95 % CI] |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    def cells(board: dict) -> str:
        return " | ".join(_fmt(board.get(c)) + board.get(f"{c}_mark", "") for c in BOARD)

    for task, seen, budget, metric, no_model, board, diff, *_ in rows:
        lines.append(f"| {task} | {'yes' if seen else 'no'} | {budget} | {metric} | {_fmt(no_model)} | "
                     + cells(board) + f" | {diff} |")  # fmt: skip
    for seen in (True, False):  # averages over the study's all-record rows (one protocol), where every column has one
        group = [r for r in rows if r[1] == seen and r[2] == "all"]
        if len(group) > 1:
            lines.append(
                f"| **mean, {'seen' if seen else 'unseen'} ({len(group)} tasks)** | | all | | "
                f"{_fmt(sum(r.no_model for r in group) / len(group))} | "
                + cells(_mean_board([r.board for r in group]))
                + " | |"
            )
    _scoreboard_figure([r for r in rows if r[2] == "all"])
    return "\n".join(lines + ["", *targets(rows)])


def _beats(pair: dict | None) -> str:
    """A paired difference read against zero: its interval above, below or across it."""
    if not pair:
        return "not measured"
    low, high = pair["interval"]
    return "ahead" if low > 0 else "behind" if high < 0 else "level"


def targets(rows: list[BoardRow]) -> list[str]:
    """Issue 12's targets, each read from the scoreboard's rows (the default hybrid as `train_router` trains it;
    the router alone beside it where the target names it): met or not, and the numbers behind the verdict."""
    from samdkif_peft.data import TASKS

    everything = [r for r in rows if r.budget == "all" and r.variants is not None]  # the study's all-record rows
    bars = {r.task: r.variants["_baselines"]["majority"]["macro_f1"] + 0.10 for r in everything
            if "macro_f1" in r.variants.get("_baselines", {}).get("majority", {})
            and TASKS[r.task].output_format in ("label", "option")}  # fmt: skip
    collapse = []  # (task, met, text): macro-F1 of the hybrid / the router alone against the majority's + 0.10
    for r in everything:
        if r.task in bars:
            macro = _board_row(r.variants, "macro_f1", r.default)  # the scoreboard's choice of cells, on macro-F1
            met = any(v is not None and v >= bars[r.task] for v in (macro["hybrid"], macro["router"]))
            text = f"{r.task} {_fmt(macro['hybrid'])} / {_fmt(macro['router'])} vs {bars[r.task]:.3f}"
            collapse.append((r.task, met, text))
    base, mixes, seen_lora = [], [], []
    for r in everything:
        hybrid = r.board.get("hybrid")
        if hybrid is None:
            continue
        base.append((r.task, r.board.get("base_best") is not None and hybrid > r.board["base_best"],
                     f"{r.task} {_fmt(hybrid)} vs {_fmt(r.board.get('base_best'))}"))  # fmt: skip
        others = [r.board.get("uniform"), *([r.board.get("own_skill")] if r.seen else [])]
        mixes.append((r.task, all(o is not None and hybrid > o for o in others),
                      f"{r.task} {_fmt(hybrid)} vs {' / '.join(_fmt(o) for o in others)}"))  # fmt: skip
        if r.seen:
            verdict = _beats(r.pair)
            seen_lora.append((r.task, verdict in ("ahead", "level"),
                              f"{r.task} {verdict}" + (f" {_difference(r.pair)}" if r.pair else "")))  # fmt: skip
    few = [(f"{r.task} {r.budget.split()[0]}", _beats(r.pair) == "ahead", f"{r.task} {r.budget.split()[0]}: {r.diff}")
           for r in rows if not r.seen and r.budget.startswith(("k=16 ", "k=64 "))]  # fmt: skip

    def line(target: str, results: list[tuple], need: int | None = None) -> str:
        met = sum(ok for _, ok, _ in results)
        need = len(results) if need is None else need
        verdict = "**met**" if results and met >= need else "not met"
        shown = "; ".join(("" if ok else "**") + text + ("" if ok else "**") for _, ok, text in results)
        return f"| {target} | {verdict}: {met} of {len(results)} | {shown} |"

    out = [
        "#### Issue 12's targets, read from the rows above",
        "",
        "Computed by `scripts/update_readme.py` from the same cells (all test records; *hybrid*: the default hybrid; "
        "unmet entries in bold). *Level*: the paired 95 % interval of hybrid minus task LoRA spans zero; *ahead*: it "
        "lies above zero (few-shot rows: pooled over seeds, as above).",
        "",
        "| target | status | per task |",
        "|---|---|---|",
        line("no collapse: macro-F1 of the hybrid / the router alone >= the majority label's + 0.10, every label "
             "task", collapse),
        line("the hybrid beats the base model's best prompt, every task", base),
        line("the hybrid beats the uniform mix and the task's own skill on at least 7 tasks", mixes,
             need=min(7, len(mixes))),
        line("the hybrid matches (level) or beats (ahead) the task LoRA, the seen tasks with all records", seen_lora),
        line("the hybrid beats the task LoRA on the unseen tasks with k <= 64 records", few),
    ]  # fmt: skip
    retrieved = [r for r in rows if "--retrieve" in r.budget and r.metric == "macro_f1" and r.task in bars]
    if retrieved:
        scores = sorted(r.board["hybrid"] for r in retrieved)
        task = retrieved[0].task
        out += [
            "",
            f"Not counted above (not the default): with retrieved training records in the prompt (`--retrieve 8`, "
            f"the scoreboard's rows), the hybrid's macro-F1 on {task} is {scores[0]:.3f}-{scores[-1]:.3f} over "
            f"{len(scores)} runs, against its no-collapse bar of {bars[task]:.3f}.",
        ]
    return out


def _few_shot_rows() -> list[tuple]:
    """The tasks measured with k <= 64 training records, mean over seeds. A (task, k) whose default hybrid and task
    LoRA the levers re-ran reads every cell from the levers' folder (one CPU for the whole row), else from the few-shot
    curve's. The default hybrid is the guarded prior's cell, or the always-applied prior's where the prior applies,
    or the uniform start where it does not (`skill_prior_guard.json`); "-" where unknown."""
    from hybrid_levers import COMMITTED, _home

    curve_pooled, levers_pooled = _load("few_shot_pooled.json"), _load("hybrid_levers.json")
    cells: dict = {}  # (task, k) -> {seed: a study's summary of the cell (its no-model baselines)}
    for source in ("few_shot.json", "hybrid_levers_cells.json"):  # the levers add the seen task they studied (NLI)
        for budget, tasks in _load(source).get("runs", {}).items():
            k, seed = (int(part.split("=")[1]) for part in budget.split(", "))
            for task, summary in tasks.items():
                if source == "few_shot.json" or _home("hybrid", task, f"k={k}") == COMMITTED:
                    cells.setdefault((task, k), {}).setdefault(seed, summary)
    rows = []
    for (task, k), seeds in sorted(cells.items(), key=lambda item: (item[0][0] not in SEEN_ORDER, *item[0])):
        metric, home = _primary(task), _home("hybrid", task, f"k={k}")
        boards, defaults = [], set()
        for seed in sorted(seeds):
            variants = {}  # the levers' cells (prior cells live there), the row's home overriding
            for folder in (COMMITTED, home):
                cell_dir = folder / f"k={k}" / f"seed={seed}" / task
                variants.update({f.stem: json.loads(f.read_text())["metrics"] for f in cell_dir.glob("*.json")})
            default = _default_hybrid(variants, _prior_applies(task, seed, k), gated=("hybrid@priorg-lr5e-3",))
            boards.append(_board_row(variants, metric, default))
            defaults.add(default)
        mean = _mean_board(boards)
        (default,) = defaults if len(defaults) == 1 else (None,)
        if default == "hybrid@lr5e-3":
            pool = (levers_pooled.get(task, {}).get(f"k={k}", {}).get("hybrid - task_lora") if home == COMMITTED
                    else curve_pooled.get(f"k={k}", {}).get(task))  # fmt: skip
        else:
            pool = levers_pooled.get(task, {}).get(f"k={k}", {}).get(f"{default} - task_lora")
        diff = "-"
        if default and pool and pool["seeds"] == len(seeds):
            ahead = sum(d > 0 for d in pool["per_seed"])
            diff = f"{_difference(pool)} over seeds; ahead in {ahead}/{len(seeds)} seeds"
        no_model = [_no_model(task, v.get("_baselines", {}), metric, lookup=f"k={k}, seed={seed}")
                    for seed, v in seeds.items()]  # fmt: skip
        no_model = None if None in no_model else sum(no_model) / len(no_model)
        where = ", re-run" if home == COMMITTED else ""
        rows.append(BoardRow(task, task in SEEN_ORDER, f"k={k} ({len(seeds)} seeds{where})", metric, no_model, mean,
                             diff, pool if diff != "-" else None))  # fmt: skip
    return rows


def _mean_board(boards: list[dict]) -> dict:
    """Each scoreboard column's mean over `boards` where every board has a value (else None), marked where any of
    those values is (a per-module-only router cell)."""
    mean = {c: sum(b[c] for b in boards) / len(boards) if all(b.get(c) is not None for b in boards) else None
            for c in BOARD}  # fmt: skip
    for c in BOARD:
        if mean[c] is not None and any(b.get(f"{c}_mark") for b in boards):
            mean[f"{c}_mark"] = "*"
    return mean


def _scoreboard_figure(rows) -> None:
    """Grouped bars per task (all training records): what each variant scores on the task's primary metric."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = {"base_best": "base (best prompt)", "uniform": "uniform", "own_skill": "own skill",
             "router": "router alone", "own_skill_lora": "own skill + task LoRA", "task_lora": "task LoRA",
             "hybrid_uniform": "hybrid, uniform start", "hybrid": "hybrid (default)"}  # fmt: skip
    fig, ax = plt.subplots(figsize=(max(6, 1.4 * len(rows)), 4))
    width = 0.8 / len(BOARD)
    for i, column in enumerate(BOARD):
        xs = [j + (i - len(BOARD) / 2 + 0.5) * width for j in range(len(rows))]
        ax.bar(xs, [r[5].get(column) or 0 for r in rows], width, label=names[column])
    for j, row in enumerate(rows):
        if row[4] is not None:
            ax.hlines(row[4], j - 0.42, j + 0.42, colors="black", linestyles="dashed", linewidth=1)
    labels = [textwrap.fill(r[0].replace("_", " "), 16) + f"\n({r[3]}{'' if r[1] else ', unseen'})" for r in rows]
    ax.set_xticks(range(len(rows)), labels, fontsize=7)
    ax.set_ylim(0, 1)
    ax.set_ylabel("primary metric")
    ax.legend(fontsize=7, ncol=len(BOARD))
    ax.set_title("All training records, 12 released skills, SmolLM2-135M (dashed: no-model baseline)", fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(RESULTS / "scoreboard.png", dpi=120)
    plt.close(fig)


def quickstart() -> str:
    path = RESULTS / "quickstart.json"
    if not path.is_file():
        return "_Run `python examples/quickstart.py --out runs/quickstart` and copy its `results.json` here._"
    data = json.loads(path.read_text())
    lines = [
        "### Quickstart (tiny Llama, two toy skills; `examples/quickstart.py`)",
        "",
        "Held-out exact match on 400 prompts (half copy, half reverse). Each skill alone, and their uniform average,",
        "solve about half; the trained sequence router picks the right skill from the prompt.",
        "",
        "| model | exact match |",
        "|---|---|",
    ]
    lines += [f"| {name} | {value:.1%} |" for name, value in data["exact_match"].items()]
    lines += ["", f"Router reloaded with `AutoPeftModelForCausalLM`: identical outputs = {data['reload_identical']}."]
    lines += ["Reproduce: `python examples/quickstart.py --out runs/quickstart` (about 30 s on 2 CPU cores)."]
    return "\n".join(lines)


def bench_router() -> str:
    path = RESULTS / "router_speed.json"
    if not path.is_file():
        return "_Run `python benchmarks/bench_router.py` to measure speed._"
    data = json.loads(path.read_text())
    if "scaling" not in data:
        return "_Rerun `python benchmarks/bench_router.py`: router_speed.json predates the current benchmark._"
    from bench_router import render  # the benchmark's own tables

    s, d = data["shape"], data["decode"]
    lines = [
        f"### Speed: mixing {data['skills']} skills (`benchmarks/bench_router.py`)",
        "",
        f"SmolLM2-135M shape ({s['num_hidden_layers']} layers, hidden {s['hidden_size']}), {data['dtype']}, "
        f"{data['threads']} CPU threads of {data.get('cpu', 'an unrecorded CPU')}, LoRA r8 skills on "
        f"q_proj/v_proj. Decode: batch {d['batch']}, a {d['prompt']}-token prompt, then {d['new_tokens']} greedy "
        "tokens with the KV cache, timed per token. Train step: forward + backward on the first forward batch. "
        "Ratios are to the base model (train: to one trainable LoRA r8), each the median of per-repeat ratios with "
        "the base timed right before the variant, so the drift of a shared machine cancels. The FLOP floor is the "
        "extra work of the skills' ranks over the base model's (what no implementation can go below). bf16 speed "
        "depends on the CPU (AMX, AVX-512): compare ratios from one run, not across machines. Where the time goes, "
        "the floors and the precision of bf16 factors: `docs/SPEED.md`.",
        "",
        render(data),
    ]
    extra = {
        "router_speed_compile.json": "With `torch.compile` (`python benchmarks/bench_router.py --compile --only "
        '"base model, torch.compile" "SKILL_ROUTER sequence, 12 skills" "SKILL_ROUTER hybrid" --seq 128 --scaling '
        "--ranks --out benchmarks/results/router_speed_compile.json`, 9 minutes): each compiled variant against the "
        "compiled base model, the compiled base and the eager rows against the eager base; on this CPU compiling "
        "speeds the base model up more than the routers (their folded-gate decoding is an eager-mode cache), so the "
        "ratios grow (`docs/SPEED.md` section 8)",
        "router_speed_gpu.json": "On the GPU (`bash benchmarks/gpu/run.sh` on the device machine)",
        "router_speed_gpu_compile.json": "On the GPU with `torch.compile` (`bash benchmarks/gpu/run.sh compile`)",
    }
    for name, title in extra.items():
        if (RESULTS / name).is_file():
            more = json.loads((RESULTS / name).read_text())
            where = more.get("device") if more.get("device", "cpu") != "cpu" else f"{more['threads']} CPU threads"
            lines += ["", f"{title}; {where}, batch {more['batch']}, {more['dtype']}:", "", render(more)]
    if not (RESULTS / "router_speed_gpu.json").is_file():
        lines += [
            "",
            "GPU: not measured yet (no GPU lent to the sessions so far). Prepared as one device call: "
            "`bash benchmarks/gpu/wheels.sh` here, then `bash benchmarks/gpu/run.sh` on the GPU machine "
            "with `.whl` carried (32 x 512 forward, batch-1 decode, tokens/s beside the ratios).",
        ]
    return "\n".join(lines)


def bench_data() -> str:
    path = RESULTS / "data_build.json"
    if not path.is_file():
        return "_Run `python benchmarks/bench_data.py` to time the data build._"
    data = json.loads(path.read_text())
    n_skills = sum(k.startswith("skills/") for k in data["counts"])
    n_tasks = sum(k.startswith("tasks/") for k in data["counts"])
    lines = [
        "### Speed: building the data (`benchmarks/bench_data.py`)",
        "",
        f"All {n_skills} skills and {n_tasks} tasks at the default sizes ({data['max_per_skill']:,} train examples",
        f"per skill) from the downloaded wheels, {data['cpu_affinity']} CPU cores: **{data['total_seconds']:.0f} s**",
        f"(target {data['target_seconds']} s). Reading each source:",
        "",
        "| source | seconds | records read | malformed |",
        "|---|---|---|---|",
    ]
    per_file = data["records_per_source_file"]
    for name, seconds in sorted(data["source_seconds"].items(), key=lambda kv: -kv[1]):
        package = name.split(":", 1)[0]
        files = [v for k, v in per_file.items() if k.split("==", 1)[0] == package]
        read, bad = sum(f["read"] for f in files), sum(f["malformed"] for f in files)
        lines.append(f"| {name} | {seconds:.2f} | {read:,} | {bad:,} |")
    return "\n".join(lines)


LABEL_VARIANTS = {
    "base": "base, project template",
    "base_chat": "base, its chat template",
    "base_3shot": "base, 3-shot",
    "uniform": "uniform mix of the 12 skills",
    "own_skill": "own skill alone",
    "lorahub": "LoRAHub: static skill weights fitted gradient-free",
    "router": "sequence router (SA-MDKIF), lr 5e-3",
    "router_token": "token router, lr 5e-3",
    "router_static": "static router (trained weights), lr 5e-3",
    "xlora": "peft X-LoRA over the same skills",
    "hybrid": "hybrid: router 5e-3 + task LoRA r8 1e-3",
    "hybrid_noskills": "that hybrid, skills switched off",
    "own_skill_lora": "own skill + task LoRA r8 (no router)",
    "task_lora": "task LoRA r8, lr 1e-3 (what a user picks instead)",
    "task_adalora": "task AdaLoRA (the skills' recipe)",
}
TAGS = {
    "lr5e-3": "task LoRA at lr 5e-3",
    "T24": "temperature 24",
    "lora-skill": "the nli skill retrained as LoRA r8",
    "len256": "records cut to 256 tokens, the hybrid saw 384: not comparable",
    "prior-lr5e-3": "the default skill prior",
    "tokprior-lr5e-3": "token router, the default skill prior",
    "L29-lr5e-3": "router input: the hidden state entering block 29 of 30",
    "gmodel-lr5e-3": "one gate for every module, gate_scope='model'",
    "glayer-lr5e-3": "one gate per decoder block, gate_scope='layer'",
    "gmodelprior-lr5e-3": "one gate for every module, gate_scope='model', the default skill prior",
    "5ep": "5 epochs",
    "lr1e-1": "its default rate",
}


def _counts(counts: dict[str, int], shown: int = 3) -> str:
    """The most frequent predicted labels, and how many labels the model predicted in all (long label sets)."""
    top = sorted(counts.items(), key=lambda item: -item[1])
    text = ", ".join(f"{k} {v}" for k, v in top[:shown])
    return text + (f", ... ({len(top)} labels predicted)" if len(top) > shown else "")


def _variant_label(variant: str) -> str:
    name, _, tag = variant.partition("@")
    label = LABEL_VARIANTS.get(name, name)
    if tag.endswith("lr5e-3") or tag in ("len256", "5ep"):  # trained at 5e-3: part of the trained variants' names
        label = label.replace("r8 1e-3", "r8 5e-3").replace("lr 1e-3", "lr 5e-3")
        tag = "" if tag == "lr5e-3" else tag
    elif tag == "lr1e-1":  # trained at 0.1: the rate in the name, the tag says why
        label = label.replace("lr 5e-3", "lr 0.1")
    return label + (f" [{TAGS.get(tag, tag)}]" if tag else "")


def _closed(variants: dict) -> bool:
    return all("accuracy" in row for name, row in variants.items() if not name.startswith("_"))


def label_tasks(name: str = "label_tasks.json", skills: str = "the 12 reference AdaLoRA skills") -> str:
    path = RESULTS / name
    if not path.is_file():
        return "_Run `python benchmarks/study_label_tasks.py` to score the closed-answer tasks._"
    data = json.loads(path.read_text())
    lines = [
        f"### Closed-answer tasks, every baseline, over {skills} (`benchmarks/study_label_tasks.py`, `{name}`)",
        "",
        "All test records, answers ranked by option log-likelihood (sum over the answer and EOS), 95 % bootstrap "
        "intervals; "
        f"skills: {skills}. `k=all`: one epoch over every training record, smaller `k`: that "
        "many records for 60 steps; `seed`: data order "
        "and init.",
        "",
        "| task | budget | variant | accuracy [95 % CI] | macro-F1 [95 % CI] | predicted labels |",
        "|---|---|---|---|---|---|",
    ]
    open_tasks = []
    for budget, tasks in data["runs"].items():
        for task, variants in tasks.items():
            if not _closed(variants):
                open_tasks.append((budget, task, variants))
                continue
            majority = variants.get("_baselines", {}).get("majority")
            if majority:
                lines.append(f"| {task} | {budget} | majority label ({majority['label']}) | "
                             f"{majority['accuracy']:.3f} | {majority['macro_f1']:.3f} | - |")  # fmt: skip
            for variant in sorted((v for v in variants if not v.startswith("_")), key=_variant_order):
                row = variants[variant]
                lo, hi = row["intervals"]["accuracy"]
                counts = _counts(row["prediction_counts"])
                flo, fhi = row["intervals"]["macro_f1"]
                lines.append(f"| {task} | {budget} | {_variant_label(variant)} | {row['accuracy']:.3f} [{lo:.3f}, "
                             f"{hi:.3f}] | {row['macro_f1']:.3f} [{flo:.3f}, {fhi:.3f}] | {counts} |")  # fmt: skip
    if open_tasks:
        lines += ["", f"### Open-answer tasks over {skills}", "", *open_answer_table(open_tasks)]
    paired = [
        (budget, task, name, diff)
        for budget, tasks in data["runs"].items()
        for task, variants in tasks.items()
        for name, diff in variants.get("_paired", {}).items()
    ]
    if paired:
        lines += [
            "",
            "Paired bootstrap over the same test records: the hybrid minus the task LoRA trained at the same rate "
            "(what a user picks instead), and minus itself with the skills switched off (what the skills add); "
            "open-answer tasks by their primary metric:",
            "",
            "| task | budget | comparison | accuracy (or primary metric) difference [95 % CI] | "
            "macro-F1 difference [95 % CI] |",
            "|---|---|---|---|---|",
        ]
        for budget, task, name, diff in paired:
            first = diff.get("accuracy") or next(iter(diff.values()))
            cells = [f"{d['difference']:+.3f} [{d['interval'][0]:+.3f}, {d['interval'][1]:+.3f}]"
                     for d in (first, diff.get("macro_f1")) if d]  # fmt: skip
            metric = "" if "accuracy" in diff else f" ({next(iter(diff))})"
            lines.append(f"| {task} | {budget} | {name}{metric} | {' | '.join(cells + ['-'] * (2 - len(cells)))} |")
    return "\n".join(lines)


def _cell(text: str) -> str:
    """Text safe inside a markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")


def open_answer_table(open_tasks: list) -> list[str]:
    """Greedy generations scored by each task's own metrics; the do-nothing baselines first."""
    lines = [
        "Open-answer tasks: greedy generation from the project template, each task's metrics (primary first), "
        "95 % bootstrap intervals over records; `heuristic` is a rule with no model (see the study's `HEURISTICS`).",
        "",
        "| task | budget | variant | primary metric [95 % CI] | other metrics | most frequent answer (count), "
        "distinct answers (first 80 characters) |",
        "|---|---|---|---|---|---|",
    ]
    for budget, task, variants in open_tasks:
        rows = {v: r for v, r in variants.items() if not v.startswith("_")}
        names = next(iter(rows.values()))["metric_names"]
        for kind, base in variants.get("_baselines", {}).items():
            others = ", ".join(f"{m} {base[m]:.3f}" for m in names[1:])
            lines.append(f"| {task} | {budget} | {kind} ({_cell(base['label'][:48])}) | {names[0]} "
                         f"{base[names[0]]:.3f} | {others or '-'} | - |")  # fmt: skip
        for variant in sorted(rows, key=_variant_order):
            row = rows[variant]
            lo, hi = row["intervals"][names[0]]
            others = ", ".join(f"{m} {row[m]:.3f}" for m in names[1:])
            top, count = max(row["prediction_counts"].items(), key=lambda item: item[1])
            lines.append(f"| {task} | {budget} | {_variant_label(variant)} | {names[0]} {row[names[0]]:.3f} "
                         f"[{lo:.3f}, {hi:.3f}] | {others or '-'} | {_cell(repr(top[:40]))} ({count}), "
                         f"{row.get('distinct_predictions')} |")  # fmt: skip
    return lines


def _variant_order(variant: str) -> tuple[int, str]:
    name = variant.partition("@")[0]
    return (list(LABEL_VARIANTS).index(name) if name in LABEL_VARIANTS else len(LABEL_VARIANTS), variant)


def calibration() -> str:
    """The hybrid (and the router alone) minus the task LoRA, raw and after batch calibration, per (budget, task)."""
    results = _load("option_calibration.json")
    pooled, guesses = results.get("pooled"), {}
    for cell in results.get("cells", []):  # the test records are the same in every cell of a task
        guesses.setdefault(cell["task"], cell["uniform_guess_macro_f1"])
    if not pooled:
        return "_Run `python benchmarks/option_calibration.py` to read the label tasks after batch calibration._"
    lines = [
        "### The closed-answer results after batch calibration (`benchmarks/option_calibration.py`)",
        "",
        "Batch calibration (Zhou et al., ICLR 2024) subtracts each option's mean log-likelihood over the test prompts "
        "before picking: label-free and run-free, it removes a bias towards one label shared by every record, so it "
        "asks whether a lead in macro-F1 is discrimination or only a spread of the answers. Read from the option "
        "scores every committed cell stores (`evaluate_options` now reports it as `batch_calibrated`); the same "
        "cells as the tables above (`levers`: the re-run few-shot cells; `DDI knowledge skill`: the 12 released "
        "skills plus one trained on the ANSM pairs, `docs/MEDICAL_VALUE.md` section 16), mean over seeds with one "
        "paired bootstrap "
        "of the test records shared by the seeds. Guessing uniformly at random scores macro-F1 "
        + ", ".join(f"{value:.3f} on {task}" for task, value in guesses.items() if task != "rare_disease_diagnosis")
        + " (rare disease is read by accuracy: chance 0.25).",
        "",
        "| cells | task | model (vs the task LoRA of its cells unless named) | metric | seeds | "
        "model - baseline, raw | calibrated: model / baseline | model - baseline, calibrated [95 % CI] |",
        "|---|---|---|---|---|---|---|---|",
    ]
    names = {"hybrid@lr5e-3": "hybrid, uniform start", "hybrid@prior-lr5e-3": "hybrid, skill prior",
             "router@lr5e-3": "router alone", "hybrid@ctl-lr5e-3": "control hybrid (13th skill = relation extraction)",
             "task_lora@lr5e-3": "task LoRA"}  # fmt: skip
    for row in pooled.values():
        raw, fixed = row["raw"], row["calibrated"]
        source, _, against = row["against"].rpartition(": ")
        model = names.get(row["variant"], row["variant"])
        if row["source"] == "DDI knowledge skill":
            model = "hybrid + DDI knowledge skill, uniform start"
        if row["against"] != "task_lora@lr5e-3":
            model += f", **vs {names.get(against, against)}**" + (f" ({source} cells)" if source else "")
        lines.append(f"| {row['source']}, {row['budget']} | {row['task']} | {model} | {row['metric']} | "
                     f"{row['seeds']} | {raw['difference']:+.3f} | {fixed['variant']:.3f} / "
                     f"{fixed['baseline']:.3f} | {_difference(fixed)} |")  # fmt: skip
    return "\n".join(lines)


RETRIEVAL_RUNS = {  # folder in results/retrieval (or the main job's) -> what the run was
    "main_job": "no retrieval, 2 epochs (the main job)",
    "plain-1ep": "no retrieval, 1 epoch",
    "r8-1ep": "`--retrieve 8`, 1 epoch, unfitted prompts (section 23)",
    "r8fit-1ep": "`--retrieve 8`, 1 epoch, seed 42",
    "r8fit-1ep-seed2": "`--retrieve 8`, 1 epoch, seed 2",
    "r8-k64-seed1": "`--retrieve 8`, k = 64 (seed 1), 60 steps, unfitted",
    "r8-k64-seed2": "`--retrieve 8`, k = 64 (seed 2), 60 steps, unfitted",
}


def _curve_cell(task: str, seed: int, variant: str, k: int = 64) -> float:
    """Macro-F1 of the few-shot curve's committed cell (rate 5e-3)."""
    path = RESULTS / "few_shot" / f"k={k}" / f"seed={seed}" / task / f"{variant}@lr5e-3.json"
    return json.loads(path.read_text())["metrics"]["macro_f1"]


def retrieval() -> str:
    """DDI severity with and without retrieved training records in the prompt (`samdkif router train --retrieve`)."""
    folders = {name: (RESULTS / "main_job" if name == "main_job" else RESULTS / "retrieval" / name)
               for name in RETRIEVAL_RUNS}  # fmt: skip
    reports = {
        n: json.loads((f / "report.json").read_text()) for n, f in folders.items() if (f / "report.json").exists()
    }
    if not any(n != "main_job" for n in reports):
        return "_Run the commands in docs/MEDICAL_VALUE.md section 23 to measure retrieval on DDI severity._"
    first = next(iter(reports.values()))
    task, references = first["task"], first["reference_counts"]
    labels = list(references)
    lookups = _load("lookup_baseline_subsets.json")[task]
    seeds = [int(name.rsplit("seed", 1)[1]) for name in reports if "-k64-seed" in name]
    guess = next(c["uniform_guess_macro_f1"] for c in _load("option_calibration.json")["cells"] if c["task"] == task)
    lines = [
        "### Retrieved training records in the prompt (`samdkif router train --retrieve N`; DDI severity, unseen)",
        "",
        "Every prompt (training and test, for every model) lists the N training records most similar to it (BM25 over "
        "the contexts; a training record never sees itself) with their answers, as many as fit the training length "
        "(384 tokens) with room for the longest training answer; the first runs (*unfitted*, section 23) listed all "
        "N, and with all records training cut the middle of the 111 training prompts that passed 384 tokens while "
        "scoring read them whole. "
        "Same data, seed 42 unless a row names another, rate 5e-3, all "
        f"{first['n_test']} test records, option log-likelihood; macro-F1 [95 % bootstrap]; the answers are counted "
        "per label "
        f"({', '.join(f'{label} {count}' for label, count in references.items())} "
        f"in the test records). No model: the majority label scores macro-F1 "
        f"{first['baselines']['majority']['macro_f1']:.3f}; the lookup of each drug's most frequent training label "
        f"{_load('lookup_baseline.json')[task]['macro_f1']:.3f} with all records"
        + "".join(
            f" (the vote of the {near['neighbours']} nearest training records' answers, in the run's report: "
            f"{near['macro_f1']:.3f})"
            for near in [
                reports[n]["baselines"]["nearest"]
                for n in ("r8fit-1ep", "r8fit-1ep-seed2")
                if n in reports and "nearest" in reports[n]["baselines"]
            ][:1]
        )
        + ", "
        + " / ".join(f"{lookups[f'k=64, seed={seed}']['macro_f1']:.3f}" for seed in seeds)
        + f" with the k = 64 records of seeds {' / '.join(map(str, seeds))} (`benchmarks/lookup_baseline.py`); "
        "without retrieval, the few-shot curve's k = 64 hybrid / task LoRA scored "
        + " and ".join(
            " / ".join(f"{_curve_cell(task, seed, v):.3f}" for v in ("hybrid", "task_lora")) + f" (seed {seed})"
            for seed in seeds
        )
        + ". Batch-calibrated: each answer's mean score over the test prompts removed (guessing uniformly at random "
        f"scores {guess:.3f}; the main job's report predates this reading). Reports and predictions: "
        "`benchmarks/results/retrieval/`.",
        "",
        "| run | model | macro-F1 | accuracy | answers (" + " / ".join(labels) + ") | minus task LoRA (macro-F1) | "
        "batch-calibrated macro-F1 |",
        "|---|---|---|---|---|---|---|",
    ]
    titles = {"base": "base model", "router": "hybrid (router + task LoRA)", "task_lora": "task LoRA"}
    for name, report in reports.items():
        for variant, title in titles.items():
            if variant not in report["metrics"]:
                continue
            metrics, interval = report["metrics"][variant], report["intervals"][variant]["macro_f1"]
            counts = report["prediction_counts"][variant]
            paired = report.get("paired", {}).get("router_minus_task_lora", {}).get("macro_f1")
            versus = (
                f"{paired['difference']:+.3f} [{paired['interval'][0]:+.3f}, {paired['interval'][1]:+.3f}]"
                if (paired and variant == "router")
                else ""
            )
            calibrated = report.get("batch_calibrated", {}).get(variant, {}).get("macro_f1")
            calibrated = "-" if calibrated is None else f"{calibrated:.3f}"
            answered = " / ".join(str(counts.get(label, 0)) for label in labels)
            lines.append(
                f"| {RETRIEVAL_RUNS[name]} | {title} | {metrics['macro_f1']:.3f} [{interval[0]:.3f}, "
                f"{interval[1]:.3f}] | {metrics['accuracy']:.3f} | {answered} | "
                f"{versus} | {calibrated} |"
            )  # fmt: skip
    mixes = {n: RESULTS / "retrieval" / n / "vote_mix.json" for n in RETRIEVAL_RUNS}
    mixes = {n: json.loads(path.read_text()) for n, path in mixes.items() if path.is_file()}
    if mixes:
        lines += ["", "Does the model add anything to counting the neighbours' answers? `benchmarks/vote_mix.py` "
                      "multiplies each model's option probabilities by the smoothed vote of the same neighbours "
                      "(lam = 1, fixed; no model runs), macro-F1, paired against the vote alone. *Model alone* is "
                      "recomputed from the stored scores; where only the committed predictions hold them (rounded to "
                      "4 decimals) near-ties can fall the other way than in the run's report (seed 2: 0.496 here, "
                      "0.492 in its report).", "",
                      "| run | vote of the neighbours | model | model alone | model x vote | model x vote - vote |",
                      "|---|---|---|---|---|---|"]  # fmt: skip
        for name, mix in mixes.items():
            for variant, entry in mix["models"].items():
                if variant == "base":
                    continue
                diff = entry["lam=1 minus vote"]["macro_f1"]
                lines.append(
                    f"| {RETRIEVAL_RUNS[name]} | {mix['vote']['macro_f1']:.3f} | {titles.get(variant, variant)} | "
                    f"{entry['0.0']['macro_f1']:.3f} | {entry['1.0']['macro_f1']:.3f} | {diff['difference']:+.3f} "
                    f"[{diff['interval'][0]:+.3f}, {diff['interval'][1]:+.3f}] |"
                )  # fmt: skip
    return "\n".join(lines)


ELIXHAUSER_RETRIEVAL = {  # folder in results/retrieval -> (seed, k, what the run was)
    "elix-r8-k64-seed1": (1, 64, "`--retrieve 8 --max-length 768`, k = 64 (seed 1), 60 steps"),
    "elix-r8-k64-seed2": (2, 64, "`--retrieve 8 --max-length 768`, k = 64 (seed 2), 60 steps"),
}


def _micro_f1(path: Path) -> float:
    return json.loads(path.read_text())["metrics"]["micro_f1"]


def retrieval_elixhauser() -> str:
    """Elixhauser (generated flags, micro-F1 via `benchmarks/task_metric.py`) with retrieved training records,
    beside the few-shot curve's cells on the same k records without retrieval."""
    runs = {name: RESULTS / "retrieval" / name / "task_metric.json" for name in ELIXHAUSER_RETRIEVAL}
    runs = {name: json.loads(path.read_text()) for name, path in runs.items() if path.is_file()}
    if not runs:
        return ""
    lines = [
        "",
        "",
        "Elixhauser comorbidity (unseen; the 39 flags of an ICD-10-CM code, generated, micro-F1 "
        "[95 % bootstrap] by `benchmarks/task_metric.py` over all "
        f"{next(iter(runs.values()))['n_test']} test codes). Its prompt is already about 313 tokens (the flag "
        "list), so eight examples need `--max-length 768`. Without retrieval: the scoreboard's cells on the same "
        "k records, steps and rate (the levers' re-run on the same CPU where there is one); no model: the flags of "
        "the training code sharing the longest prefix / the answer of the most similar training record (BM25, what "
        "the retrieval lists first), over the same records.",
        "",
        "| run | hybrid | task LoRA | hybrid - task LoRA | base model | without retrieval: hybrid / task LoRA | "
        "no model |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, result in runs.items():
        seed, k, title = ELIXHAUSER_RETRIEVAL[name]
        models, task = result["models"], result["task"]
        router = next(m for m in models if m not in ("task_lora", "base", "nearest_record"))

        def cell(model: str, models: dict = models) -> str:
            scored = models[model]
            low, high = scored["intervals"]["micro_f1"]
            return f"{scored['micro_f1']:.3f} [{low:.3f}, {high:.3f}]"

        # the scoreboard's cells: the levers' re-run (one CPU, as the retrieval runs) where it exists, else the curve's
        cells = [RESULTS / source / f"k={k}" / f"seed={seed}" / task for source in ("hybrid_levers", "few_shot")]
        without = " / ".join(
            f"{_micro_f1(next(c / f'{v}@lr5e-3.json' for c in cells if (c / f'{v}@lr5e-3.json').is_file())):.3f}"
            for v in ("hybrid", "task_lora")
        )
        pair = result["paired"][f"{router} - task_lora"]["micro_f1"]
        rule = models["task_lora"]["baselines"]["heuristic"]["micro_f1"]
        lines.append(f"| {title} | {cell(router)} | {cell('task_lora')} | {_difference(pair)} | {cell('base')} | "
                     f"{without} | {rule:.3f} / {models['nearest_record']['micro_f1']:.3f} |")  # fmt: skip
    return "\n".join(lines)


def include(path: str) -> str:
    return (ROOT / path).read_text().strip()


def main() -> None:
    readme = ROOT / "README.md"
    text = readme.read_text()
    blocks = {
        "results:scoreboard": scoreboard(),
        "results:main_job": main_job(),
        "results:quickstart": quickstart(),
        "results:bench_router": bench_router(),
        "results:bench_data": bench_data(),
        "results:few_shot": few_shot(),
        "results:hybrid_levers": hybrid_levers(),
        "results:calibration": calibration(),
        "results:retrieval": retrieval() + retrieval_elixhauser(),
        "results:label_tasks_released": label_tasks("label_tasks_released.json", "the 12 released LoRA skills"),
        "results:label_tasks": label_tasks(),
    }
    for match in re.finditer(r"<!-- (include:[^ ]+) -->", text):
        blocks[match.group(1)] = include(match.group(1).split(":", 1)[1])
    for key, body in blocks.items():
        pattern = re.compile(rf"(<!-- {re.escape(key)} -->\n).*?(<!-- /{re.escape(key)} -->)", re.S)
        text, n = pattern.subn(lambda m, body=body: m.group(1) + body + "\n" + m.group(2), text)
        if n != 1:
            raise ValueError(f"README.md must contain the markers <!-- {key} --> and <!-- /{key} --> once")
    readme.write_text(text)


if __name__ == "__main__":
    main()
