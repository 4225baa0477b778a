"""Task x skill routing heat-map: how much weight each task's trained router gives each skill.

    python benchmarks/routing_map.py [--runs runs/study-released/k=all/seed=42] [--variant hybrid@lr5e-3]

For every task with a trained `<variant>` adapter under `--runs` (written by `study_label_tasks.py`), the router's
mean skill weights over the first 64 test prompts (`SkillRouterModel.mean_routing_weights`, averaged over the adapted
modules). Writes `benchmarks/results/routing_map.json` and `routing_map.png`; the README shows the figure. A row near
1/12 everywhere is a router that learned to mix evenly; a peak on the task's own skill (seen tasks) is what the paper's
design expects.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import torch


RESULTS = Path(__file__).resolve().parent / "results"
PROMPTS = 64


def task_row(folder: Path, task: str, base: str) -> dict[str, float]:
    from peft import PeftModel

    from samdkif_peft.base_model import load_base_model
    from samdkif_peft.data import load_task
    from samdkif_peft.data.templates import format_prompt

    model, tokenizer = load_base_model(base)
    model = PeftModel.from_pretrained(model, str(folder))
    test = load_task(task)["test"]
    prompts = [format_prompt(r) for r in test.select(range(min(PROMPTS, len(test))))]
    with torch.no_grad():
        weights = model.base_model.mean_routing_weights(tokenizer, prompts)
    mean = torch.stack(list(weights.values())).mean(0)
    names = model.base_model._routing_states[model.active_adapter].skill_names
    return {name: round(float(v), 5) for name, v in zip(names, mean)}


def plot(rows: dict[str, dict[str, float]], variant: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from samdkif_peft.data import TASKS

    tasks = sorted(rows, key=lambda t: (TASKS[t].skill_type is None, t))  # seen tasks first
    skills = list(next(iter(rows.values())))
    matrix = [[rows[t][s] for s in skills] for t in tasks]
    fig, ax = plt.subplots(figsize=(1.0 + 0.6 * len(skills), 1.2 + 0.45 * len(tasks)))
    image = ax.imshow(matrix, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(skills)), [s.replace("_", " ") for s in skills], rotation=45, ha="right", fontsize=7)
    ax.set_yticks(range(len(tasks)), tasks, fontsize=7)
    for i, task in enumerate(tasks):
        own = TASKS[task].skill_type
        if own in skills:  # outline the task's own skill
            ax.add_patch(plt.Rectangle((skills.index(own) - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="red"))
        for j, value in enumerate(matrix[i]):
            ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=6, color="white" if value < 0.2 else "k")
    fig.colorbar(image, ax=ax, fraction=0.03)
    ax.set_title(f"Mean routing weight per skill ({variant}; red: the task's own skill)", fontsize=9)
    fig.tight_layout()
    out = RESULTS / "routing_map.png"
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default="runs/study-released/k=all/seed=42")
    parser.add_argument("--variant", default="hybrid@lr5e-3")
    parser.add_argument("--base-model", default=None, help="default: the prepared SmolLM2")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from samdkif_peft.base_model import resolve_base_model

    base = resolve_base_model(args.base_model)
    path = RESULTS / "routing_map.json"
    done = json.loads(path.read_text())["tasks"] if path.is_file() else {}
    for folder in sorted(Path(args.runs).glob(f"*/adapters/{args.variant}")):
        task = folder.parent.parent.name
        if task not in done and (folder / "adapter_config.json").is_file():
            done[task] = task_row(folder, task, base)
            print(task, max(done[task].items(), key=lambda item: item[1]), flush=True)
    if not done:
        raise SystemExit(f"No trained {args.variant} adapters under {args.runs}; run benchmarks/study_label_tasks.py")
    path.write_text(json.dumps({"variant": args.variant, "prompts": PROMPTS, "tasks": done}, indent=1) + "\n")
    print(f"wrote {path} and {plot(done, args.variant)}")


if __name__ == "__main__":
    main()
