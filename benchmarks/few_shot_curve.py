"""Few-shot curve on the unseen tasks: router, hybrid and task LoRA at k training records, several seeds, plotted.

    python benchmarks/few_shot_curve.py --skills-dir release/skills [--tasks ...] [--ks 16 64 256 all] \
        [--seeds 1 2 3] [--variants router hybrid task_lora] [--commit]

Each cell (task, k, seed, variant) is one `study_label_tasks.py` run, cached in `--out`, so a stopped curve resumes
where it stopped; with `--commit` every finished cell's result (metrics, predictions, option scores; no weights) is
copied to `benchmarks/results/few_shot/` and committed, so the curve survives the machine. Steps grow with k (a
handful of records needs several epochs; `all` is one epoch) and every trained variant gets the same steps, data and
rate (5e-3: the better rate for both the task LoRA and the hybrid's task adapter, docs/MEDICAL_VALUE.md).
Then `--plot` (or any run) draws `benchmarks/results/few_shot.png` from `benchmarks/results/few_shot.json` (the
`all` column: the released-skills study's seed-42 cells, `curve_runs`).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
from pathlib import Path


HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
UNSEEN = ("ddi_severity", "rare_disease_diagnosis", "elixhauser_comorbidity")
STEPS = {"16": 30, "64": 60, "256": 100, "all": 0}  # 0: one epoch (155-250 steps of 8 records)
# what each task is read by: macro-F1 where accuracy rewards the majority label (DDI), accuracy over 4 shuffled
# options (rare disease; chance 0.25), micro-F1 over comorbidity flags (Elixhauser)
PRIMARY = {
    "ddi_severity": "macro_f1",
    "rare_disease_diagnosis": "accuracy",
    "elixhauser_comorbidity": "micro_f1",
    "icd10cm_excludes_nli": "macro_f1",
    "icd10cm_chapter_classification": "macro_f1",
}  # (seen: lever studies)
RATE = 5e-3
MULTIPLE_CHOICE = ("rare_disease_diagnosis",)
VARIANTS = ("router", "hybrid", "task_lora")


def baseline(task: str, baselines: dict, metric: str) -> tuple[str, float | None]:
    """The score of doing nothing, named: chance over shuffled options for multiple choice (the majority letter of
    k records means nothing there), else the majority label."""
    if task in MULTIPLE_CHOICE:
        return "chance", baselines["chance"]["accuracy"]
    return "majority label", baselines["majority"].get(metric)


def run_cell(args, task: str, k: str, seed: int, variant: str) -> None:
    command = [
        sys.executable, str(HERE / "study_label_tasks.py"), "--skills-dir", args.skills_dir, "--tasks", task,
        "--variants", variant, "--seed", str(seed), "--max-steps", str(STEPS[k]), "--out", args.out,
        "--json", str(RESULTS / "few_shot.json"), "--tag", "lr5e-3", "--task-learning-rate", str(RATE),
        "--training-args", json.dumps({"learning_rate": RATE}),
    ]  # fmt: skip
    if k != "all":
        command += ["--k", k]
    subprocess.run(command, check=True)
    if args.commit:
        source = Path(args.out) / f"k={k}" / f"seed={seed}" / task / f"{variant}@lr5e-3.json"
        target = RESULTS / "few_shot" / f"k={k}" / f"seed={seed}" / task / source.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        subprocess.run(["git", "add", str(target), str(RESULTS / "few_shot.json")], check=True)
        if subprocess.run(["git", "diff", "--cached", "--quiet"]).returncode:  # a cached cell adds nothing new
            subprocess.run(["git", "commit", "-qm", f"few-shot curve: {task} k={k} seed={seed} {variant}"], check=True)


def _seed_mean(scorers: list, side: int, metric: str):
    """pick -> {metric: the mean over seeds of side `side`'s score on the same records}."""
    import numpy as np

    return lambda pick: {metric: float(np.mean([pair[side](pick)[metric] for pair in scorers]))}


def _tagged(variant: str) -> str:
    """The cell name of `variant`: the curve's rate tag unless it names its own."""
    return variant if "@" in variant else f"{variant}@lr5e-3"


def pooled_differences(
    a: str = "hybrid",
    b: str = "task_lora",
    n_resamples: int = 1000,
    root: Path = RESULTS,
    a_dir: Path | None = None,
    b_dir: Path | None = None,
    out: Path | None = None,
    write: bool = True,
    tasks: tuple[str, ...] = UNSEEN,
    k: str = "k=*",
) -> dict:
    """`a - b` on each task's primary metric, averaged over the seeds of each (k, task), with one paired bootstrap
    over test records shared by every seed (the test set is the same; each resample is scored in every seed).

    The interval covers the test records' sampling given these seeds' draws of k training records, not the draw
    itself: with 3 seeds, the spread between draws is the [min, max] of the per-seed differences beside it.
    Read from the committed cells in `results/few_shot/`; written to `results/few_shot_pooled.json`. `a_dir` /
    `b_dir` read `a` / `b` from other folders of the same `k=*/seed=*/<task>/` layout (e.g. a study over other skills),
    and `out` writes the result elsewhere (`write=False`: nowhere); `tasks`: which tasks (any of `PRIMARY`); `k`: which
    budgets (a glob, e.g. `k=64`). A variant
    without a tag (`hybrid`) is read at the curve's rate (`hybrid@lr5e-3`); a tagged one (`own_skill_lora@re-lr5e-3`)
    as named.
    """
    import numpy as np
    from study_label_tasks import TASKS, record_scorer

    from samdkif_peft.evaluation.likelihood import paired_bootstrap

    a_dir, b_dir = a_dir or root / "few_shot", b_dir or root / "few_shot"
    pooled: dict = {}
    for k_dir in sorted(a_dir.glob(k)):
        for task in tasks:
            pairs = []
            for seed_dir in sorted(k_dir.glob("seed=*")):
                relative = seed_dir.relative_to(a_dir) / task
                cells = [a_dir / relative / f"{_tagged(a)}.json", b_dir / relative / f"{_tagged(b)}.json"]
                if all(c.is_file() for c in cells):
                    pairs.append([json.loads(c.read_text()) for c in cells])
            if not pairs:
                continue
            references = pairs[0][0]["references"]
            if any(r["references"] != references for pair in pairs for r in pair):
                raise SystemExit(f"{k_dir.name} {task}: the cells scored different test records")
            metric = PRIMARY[task]
            spec = TASKS[task]
            scorers = [(record_scorer(spec, x, references), record_scorer(spec, y, references)) for x, y in pairs]
            result = paired_bootstrap(_seed_mean(scorers, 0, metric), _seed_mean(scorers, 1, metric),
                                      len(references), n_resamples=n_resamples)[metric]  # fmt: skip
            every = np.arange(len(references))
            per_seed = [sa(every)[metric] - sb(every)[metric] for sa, sb in scorers]
            pooled.setdefault(k_dir.name, {})[task] = {
                "metric": metric, "comparison": f"{a} - {b}", "seeds": len(pairs), **result,
                "per_seed": per_seed, "n": len(references),
            }  # fmt: skip
    if write:
        (out or root / "few_shot_pooled.json").write_text(json.dumps(pooled, indent=1) + "\n")
    return pooled


def curve_runs() -> dict:
    """The curve's cells by budget ("k=16, seed=1" -> task -> variant -> metrics), its `all` column read from the
    released-skills study (`label_tasks_released.json`: seed 42, one epoch at the curve's rate; the cells the
    scoreboard reads) until the curve has all-record cells of its own; {} before any run."""

    def load(name: str) -> dict:
        path = RESULTS / name
        return json.loads(path.read_text())["runs"] if path.is_file() else {}

    runs, cell_names = load("few_shot.json"), {_tagged(v) for v in VARIANTS}
    if not any(budget.startswith("k=all,") for budget in runs):
        for budget, tasks in load("label_tasks_released.json").items():
            rows = {task: {v: row for v, row in cells.items() if v.startswith("_") or v in cell_names}
                    for task, cells in tasks.items() if task in UNSEEN}  # fmt: skip
            if budget.startswith("k=all,") and rows:
                runs[budget] = rows
    return runs


def plot(variants) -> Path | None:
    """Mean and spread over seeds of each task's primary metric against k, with the baseline of doing nothing."""
    runs = curve_runs()
    if not runs:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = [t for t in UNSEEN if any(t in rows for rows in runs.values())]
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.2 * len(tasks), 3.4), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        metric, majority, name = PRIMARY[task], None, None
        for variant in variants:
            xs, means, lows, highs = [], [], [], []
            for i, k in enumerate(STEPS):
                values = []
                for budget, rows in runs.items():
                    row = rows.get(task, {}).get(f"{variant}@lr5e-3")
                    if budget.startswith(f"k={k},") and row:
                        values.append(row[metric])
                        name, majority = baseline(task, rows[task]["_baselines"], metric)
                if values:
                    xs.append(i)
                    means.append(statistics.mean(values))
                    lows.append(min(values))
                    highs.append(max(values))
            if xs:
                ax.plot(xs, means, marker="o", label=variant)
                ax.fill_between(xs, lows, highs, alpha=0.15)
        if majority is not None:
            ax.axhline(majority, color="grey", linestyle="--", linewidth=1, label=name)
        ax.set_xticks(range(len(STEPS)), [f"k={k}" for k in STEPS])
        ax.set_title(task, fontsize=10)
        ax.set_ylabel(metric.replace("_", "-"))
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    title = "Unseen tasks: mean over seeds (band: min-max; k=all: seed 42), SmolLM2-135M, 12 released skills"
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    out = RESULTS / "few_shot.png"
    fig.savefig(out, dpi=120)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skills-dir", default="release/skills")
    parser.add_argument("--tasks", nargs="+", default=list(UNSEEN), choices=UNSEEN)
    parser.add_argument("--ks", nargs="+", default=list(STEPS), choices=list(STEPS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS))
    parser.add_argument("--out", default="runs/few-shot")
    parser.add_argument("--commit", action="store_true", help="commit each finished cell's results")
    parser.add_argument("--plot", action="store_true", help="only draw the figure from the results so far")
    args = parser.parse_args()
    if not args.plot:
        for k in args.ks:  # small budgets first: the whole curve's shape appears early
            for seed in args.seeds:
                for task in args.tasks:
                    for variant in args.variants:
                        run_cell(args, task, k, seed, variant)
    for k, tasks in pooled_differences().items():
        for task, row in tasks.items():
            low, high = row["interval"]
            print(f"{k} {task}: hybrid - task LoRA {row['difference']:+.3f} [{low:+.3f}, {high:+.3f}] "
                  f"(mean of {row['seeds']} seeds)")  # fmt: skip
    print(plot(args.variants) or "no results yet")


if __name__ == "__main__":
    main()
