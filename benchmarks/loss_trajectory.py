"""Every training step's loss of one few-shot hybrid cell: whether two code versions, or two machines, train alike.

    python benchmarks/loss_trajectory.py --task ddi_severity --k 64 --seed 1 --steps 60
    git worktree add /tmp/old 31a8ce3 && PYTHONPATH=/tmp/old python benchmarks/loss_trajectory.py ...  # older code

Trains the hybrid exactly as a `hybrid_levers.py` / `few_shot_curve.py` cell does (the study's `subsample`, router and
task LoRA at 5e-3, cosine, checkpoints and evaluation every 50 steps, uniform start) with a loss logged at every step,
and prints the trajectory with the library's path and the CPU. The library is whatever `samdkif_peft` imports first,
so `PYTHONPATH` selects a checkout; the script's own imports are the few that every version since the few-shot curve
has. `--json` writes the result for a later comparison (`--compare A.json B.json`: the first step where two differ).
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
import tempfile
from pathlib import Path


HERE = Path(__file__).resolve().parent


def trajectory(task: str, k: int, seed: int, steps: int, skills_dir: str) -> dict:
    from datasets import DatasetDict

    import samdkif_peft
    from samdkif_peft.base_model import resolve_base_model
    from samdkif_peft.data import load_task
    from samdkif_peft.training import DEFAULT_ROUTER_MAX_LENGTH, train_router

    try:
        from samdkif_peft.utils import cpu_description
    except ImportError:  # a checkout older than the helper
        import platform

        def cpu_description() -> str:
            return platform.processor() or platform.machine()

    data = load_task(task)
    train = data["train"].shuffle(seed=seed).select(range(k))  # the study's `subsample`
    data = DatasetDict({"train": train, "validation": data["validation"], "test": data["test"]})
    skills = {p.name.removeprefix("skill-"): str(p.resolve()) for p in sorted(Path(skills_dir).glob("skill-*"))}
    extra = {"skill_prior_records": 0} if "skill_prior_records" in inspect.signature(train_router).parameters else {}
    overrides = {"seed": seed, "save_steps": 50, "eval_steps": 50, "logging_steps": 1, "learning_rate": 5e-3,
                 "max_steps": steps}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="trajectory-") as out:
        train_router(task, skills, resolve_base_model(None), out, router="sequence", training_args=overrides,
                     task_rank=8, task_learning_rate=5e-3, dataset=data, max_eval_samples=64,
                     max_length=DEFAULT_ROUTER_MAX_LENGTH, **extra)  # fmt: skip
        state = json.loads(sorted(Path(out).rglob("trainer_state.json"))[-1].read_text())
    losses = [h["loss"] for h in state["log_history"] if "loss" in h]
    return {"task": task, "k": k, "seed": seed, "steps": steps, "library": str(Path(samdkif_peft.__file__).parent),
            "cpu": cpu_description(), "losses": losses, "mean_loss": sum(losses) / len(losses)}  # fmt: skip


def compare(a: dict, b: dict) -> str:
    first = next((i for i, (x, y) in enumerate(zip(a["losses"], b["losses"])) if x != y), None)
    if first is None and len(a["losses"]) == len(b["losses"]):
        return f"identical: {len(a['losses'])} steps, mean loss {a['mean_loss']:.5f}"
    first = min(len(a["losses"]), len(b["losses"])) if first is None else first
    return (f"first difference at step {first + 1}; mean loss {a['mean_loss']:.5f} ({a['cpu']}) vs "
            f"{b['mean_loss']:.5f} ({b['cpu']})")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="ddi_severity")
    parser.add_argument("--k", type=int, default=64)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--skills-dir", default=str(HERE.parent / "release" / "skills"))
    parser.add_argument("--json", help="write the trajectory here")
    parser.add_argument("--compare", nargs=2, metavar=("A", "B"), help="compare two written trajectories")
    args = parser.parse_args()
    if args.compare:
        print(compare(*(json.loads(Path(p).read_text()) for p in args.compare)))
        return
    result = trajectory(args.task, args.k, args.seed, args.steps, args.skills_dir)
    print(f"library {result['library']} on {result['cpu']}: mean loss {result['mean_loss']:.5f}", file=sys.stderr)
    print(json.dumps(result["losses"]))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
