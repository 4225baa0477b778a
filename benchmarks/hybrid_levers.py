"""The hybrid's levers, one at a time, few-shot and over seeds (issue 12: "study the levers with numbers").

    python benchmarks/hybrid_levers.py run [--task icd10cm_excludes_nli] [--k 64] [--seeds 1 2 3] [--levers ...]
    python benchmarks/hybrid_levers.py report

Each lever changes one setting of the default hybrid (sequence router at 5e-3 + task LoRA r8 at 5e-3, 12 released
skills) and keeps everything else: the same k records, steps (`few_shot_curve.STEPS`), seeds and test records. A cell
is one `study_label_tasks.py` run, cached in `--out`; each finished cell's result (metrics, predictions, option
scores; no weights) is copied to `benchmarks/results/hybrid_levers/` and committed, so a study resumes on a bare
machine. `report` pools each lever over seeds (`few_shot_curve.pooled_differences`: the difference averaged over
seeds, one bootstrap of the test records shared by the seeds) against the default hybrid and against the task LoRA of
the same rank, and writes `benchmarks/results/hybrid_levers.json`.

The default testbed is ICD-10-CM Excludes NLI with 64 records: a seen task whose own skill matters (alone it scores
0.453 macro-F1, the task LoRA with all records 0.655), in the few-record regime the paper is about.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path


HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
COMMITTED = RESULTS / "hybrid_levers"
RATE = 5e-3
# lever -> (tag, the study's extra arguments, variants). The first two are the references every lever is read against.
LEVERS: dict[str, tuple[str, list[str], list[str]]] = {
    "default": ("lr5e-3", [], ["hybrid", "task_lora"]),
    "own-skill-lora": ("lr5e-3", [], ["own_skill_lora"]),
    "router-lr-5e-4": ("rlr5e-4", ["--training-args", json.dumps({"learning_rate": 5e-4})], ["hybrid"]),
    "router-lr-5e-2": ("rlr5e-2", ["--training-args", json.dumps({"learning_rate": 5e-2})], ["hybrid"]),
    "temperature-4": ("T4-lr5e-3", ["--temperature", "4"], ["hybrid"]),
    "token-router": ("token-lr5e-3", ["--hybrid-router", "token"], ["hybrid"]),
    "static-router": ("static-lr5e-3", ["--hybrid-router", "static"], ["hybrid"]),
    "top-2": ("top2-lr5e-3", ["--top-k", "2"], ["hybrid"]),
    "null-expert": ("null-lr5e-3", ["--null-expert"], ["hybrid"]),
    "router-input-layer-15": ("L15-lr5e-3", ["--sequence-input", "layer:15"], ["hybrid"]),  # the middle of 30
    "task-rank-16": ("r16-lr5e-3", ["--task-rank", "16"], ["hybrid", "task_lora"]),
    "task-rank-4": ("r4-lr5e-3", ["--task-rank", "4"], ["hybrid", "task_lora"]),
    "rate-1e-3": (
        "lr1e-3",
        ["--task-learning-rate", "1e-3", "--training-args", json.dumps({"learning_rate": 1e-3})],
        ["hybrid", "task_lora"],
    ),  # every factor at 1e-3, the hybrid and its task LoRA baseline alike
    "router-alone": ("lr5e-3", [], ["router"]),  # the paper's method: no task adapter
    "router-alone-one-gate": ("gmodel-lr5e-3", ["--gate-scope", "model"], ["router"]),  # its default since session 34
    "balanced-labels": ("bal-lr5e-3", ["--balance-labels"], ["hybrid", "task_lora"]),  # every label equally often
    # the router starts at softmax(-loss / 0.25) over the skills: always (the cells made before the library's guard),
    # and as the library does by default, only where the best skill's loss is 7 % below the uniform mix's and the gain
    # holds record by record (paired t >= 4; cells made before session 27 used the 7 % rule alone, docs/DEFAULTS.md)
    "skill-prior": ("prior-lr5e-3", ["--skill-prior", "64", "--skill-prior-always"], ["hybrid"]),
    "skill-prior-guarded": ("priorg-lr5e-3", ["--skill-prior", "64"], ["hybrid"]),
    "steps-x2": ("x2-lr5e-3", ["--max-steps", "2x"], ["hybrid", "task_lora"]),  # twice the curve's steps for this k
    "gates-per-layer": ("glayer-lr5e-3", ["--gate-scope", "layer"], ["hybrid"]),  # q and v of a block share a gate
    "one-gate": ("gmodel-lr5e-3", ["--gate-scope", "model"], ["hybrid"]),  # one gate for every module
}
# The same settings on top of the library's default start, the skill prior (where the guard applies it, as on NLI,
# `skill-prior`'s cells are that default's): "prior+LEVER" is read against `skill-prior`'s hybrid, and against the task
# LoRA of its rank from LEVER's own cells (the prior does not touch a task LoRA, so that cell is shared).
ON_PRIOR = (
    "one-gate", "gates-per-layer", "task-rank-16", "task-rank-4", "router-lr-5e-2", "router-lr-5e-4",
    "temperature-4", "top-2", "null-expert", "static-router",
)  # fmt: skip
for _lever in ON_PRIOR:
    _tag, _extra, _ = LEVERS[_lever]
    LEVERS[f"prior+{_lever}"] = (f"prior-{_tag}", LEVERS["skill-prior"][1] + _extra, ["hybrid"])


def _references(lever: str) -> tuple[str, str]:
    """What `lever`'s hybrid is read against: (the hybrid it changes one setting of, the task LoRA of its rank)."""
    own = lever.removeprefix("prior+")
    tag, _, variants = LEVERS[own]
    rank_lora = _cell("task_lora", tag) if "task_lora" in variants else "task_lora"
    if variants == ["router"] and lever != "router-alone":  # a setting of the router alone: read against it
        return "router", rank_lora
    return ("hybrid@prior-lr5e-3" if lever != own else "hybrid"), rank_lora


def run_cell(args, lever: str, seed: int) -> None:
    own = lever.removeprefix("prior+")
    if own != lever and "task_lora" in LEVERS[own][2]:  # the task LoRA of its rank, shared with `own`
        _run_cell(args, own, seed, variants=["task_lora"])
    _run_cell(args, lever, seed)


def _run_cell(args, lever: str, seed: int, variants: list[str] | None = None) -> None:
    from few_shot_curve import STEPS

    tag, extra, all_variants = LEVERS[lever]
    variants = variants or all_variants
    extra = [str(2 * STEPS[str(args.k)]) if a == "2x" else a for a in extra]
    command = [
        sys.executable, str(HERE / "study_label_tasks.py"), "--skills-dir", args.skills_dir, "--tasks", args.task,
        "--variants", *variants, "--k", str(args.k), "--seed", str(seed), "--max-steps", str(STEPS[str(args.k)]),
        "--out", args.out, "--json", str(RESULTS / "hybrid_levers_cells.json"), "--tag", tag,
        "--task-learning-rate", str(RATE), "--training-args", json.dumps({"learning_rate": RATE}), *extra,
    ]  # fmt: skip
    subprocess.run(command, check=True)  # a later --training-args overrides the rate above (router rate levers)
    added = []
    for variant in variants:
        source = Path(args.out) / f"k={args.k}" / f"seed={seed}" / args.task / f"{variant}@{tag}.json"
        target = COMMITTED / source.relative_to(args.out)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        added.append(str(target))
    if args.commit:
        subprocess.run(["git", "add", *added, str(RESULTS / "hybrid_levers_cells.json")], check=True)
        if subprocess.run(["git", "diff", "--cached", "--quiet"]).returncode:
            message = f"hybrid levers: {args.task} k={args.k} seed={seed} {lever}"
            subprocess.run(["git", "commit", "-qm", message], check=True)


def _home(cell: str, task: str, k: str = "k=*") -> Path:
    """Where `cell`'s results for `task` at `k` are: the levers' folder, or for the default hybrid and task LoRA of a
    (task, k) the levers did not re-run, the few-shot curve's folder (the same records, steps, seeds and rate; made
    on another CPU for its first cells: see docs/DEFAULTS.md)."""
    from few_shot_curve import _tagged

    if cell in ("hybrid", "task_lora") and not any(COMMITTED.glob(f"{k}/seed=*/{task}/{_tagged(cell)}.json")):
        return RESULTS / "few_shot"
    return COMMITTED


def _cell(variant: str, tag: str) -> str:
    """A lever's cell as `pooled_differences` names it (the curve's own rate tag is implied)."""
    return variant if tag == "lr5e-3" else f"{variant}@{tag}"


def report() -> dict:
    """Each lever's hybrid minus the default hybrid, and minus the task LoRA of the same rank, pooled over seeds."""
    from few_shot_curve import PRIMARY, pooled_differences

    tasks = tuple(PRIMARY)
    comparisons = []
    for lever, (tag, _, variants) in LEVERS.items():
        reference, rank_lora = _references(lever)
        for variant in variants:
            cell = _cell(variant, tag)
            if cell not in ("hybrid", "task_lora"):
                comparisons.append((cell, "task_lora" if variant == "task_lora" else reference))
            if variant != "task_lora":
                comparisons.append((cell, rank_lora))
    pooled: dict = {}
    ks = sorted({d.name for d in COMMITTED.glob("k=*")}, key=lambda name: int(name[2:]))
    for (a, b), task, k in [(pair, task, k) for pair in comparisons for task in tasks for k in ks]:
        homes = _home(a, task, k), _home(b, task, k)
        if COMMITTED not in homes:
            continue  # the curve's own comparison, reported by few_shot_curve.py
        found = pooled_differences(a, b, a_dir=homes[0], b_dir=homes[1], write=False, tasks=(task,), k=k)
        row = found.get(k, {}).get(task)
        if row is None:
            continue
        pooled.setdefault(task, {}).setdefault(k, {})[f"{a} - {b}"] = row
        low, high = row["interval"]
        seeds = " ".join(f"{d:+.3f}" for d in row["per_seed"])
        print(f"{task} {k:5s} {a + ' - ' + b:44s} {row['difference']:+.3f} [{low:+.3f}, {high:+.3f}] "
              f"per seed {seeds}")  # fmt: skip
    (RESULTS / "hybrid_levers.json").write_text(json.dumps(pooled, indent=1) + "\n")
    return pooled


def render() -> str:
    """The README's table: each lever's hybrid (mean over seeds [min, max] of the task's primary metric), its
    difference to the default hybrid and to the task LoRA of the same rank, from the committed cells and the pooled
    report."""
    import statistics

    from few_shot_curve import PRIMARY

    path = RESULTS / "hybrid_levers.json"
    if not path.is_file():
        return "_Run `python benchmarks/hybrid_levers.py run --commit` to measure the levers._"
    pooled = json.loads(path.read_text())
    lines = []
    for task, by_k in pooled.items():
        metric = PRIMARY[task]
        for k, comparisons in by_k.items():
            seeds = [d for d in sorted((COMMITTED / k).glob("seed=*")) if (d / task).is_dir()]

            def scores(cell: str, seeds=seeds, task=task, metric=metric, k=k) -> list[float]:
                folder = _home(cell.removesuffix("@lr5e-3"), task, k)
                files = [folder / d.relative_to(COMMITTED) / task / f"{cell}.json" for d in seeds]
                return [json.loads(f.read_text())["metrics"][metric] for f in files if f.is_file()]

            def diff(name: str, comparisons=comparisons) -> str:
                row = comparisons.get(name)
                if row is None:
                    return "-"
                low, high = row["interval"]
                return f"{row['difference']:+.3f} [{low:+.3f}, {high:+.3f}] ({row['seeds']})"

            lines += [f"{task}, {k} ({metric}; every cell the same {k[2:]} records per seed, "
                      f"{len(seeds)} seeds):", "",
                      "| lever | variant | mean [min, max] (seeds) | minus the model it changes (prior+: the skill "
                      "prior's hybrid; router-alone-LEVER: the router alone) | minus the task LoRA of its rank |",
                      "|---|---|---|---|---|"]  # fmt: skip
            for lever, (tag, _, variants) in LEVERS.items():
                reference, rank_lora = _references(lever)
                for variant in variants:
                    values = scores(f"{variant}@{tag}")
                    if not values:
                        continue
                    shown = f"{statistics.mean(values):.3f} [{min(values):.3f}, {max(values):.3f}] ({len(values)})"
                    cell = _cell(variant, tag)
                    versus_default = "-" if cell in ("hybrid", "task_lora") else diff(f"{cell} - {reference}")
                    versus_lora = "-" if variant == "task_lora" else diff(f"{cell} - {rank_lora}")
                    if variant == "task_lora" and cell != "task_lora":
                        versus_default = diff(f"{cell} - task_lora") + " (vs the default task LoRA)"
                    lines.append(f"| {lever} | {variant} | {shown} | {versus_default} | {versus_lora} |")
            lines.append("")
    return "\n".join(lines).strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stage", choices=("run", "report"))
    parser.add_argument("--skills-dir", default="release/skills")
    parser.add_argument("--task", default="icd10cm_excludes_nli")
    parser.add_argument("--k", type=int, default=64, choices=(16, 64, 256))
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument("--levers", nargs="+", default=list(LEVERS), choices=list(LEVERS))
    parser.add_argument("--out", default="runs/levers")
    parser.add_argument("--commit", action="store_true", help="commit each finished cell's results")
    args = parser.parse_args()
    sys.path.insert(0, str(HERE))
    if args.stage == "run":
        for lever in args.levers:  # one lever over every seed before the next: each lever's answer arrives whole
            for seed in args.seeds:
                run_cell(args, lever, seed)
    report()


if __name__ == "__main__":
    main()
