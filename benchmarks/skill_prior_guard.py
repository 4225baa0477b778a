"""Where the router's skill prior applies: each skill's answer loss and the uniform mix's on a few-shot cell's records.

    python benchmarks/skill_prior_guard.py icd10cm_excludes_nli:1 elixhauser_comorbidity:2 ...   # task:seed
    python benchmarks/skill_prior_guard.py elixhauser_comorbidity:2:relation_extraction         # that skill only
    python benchmarks/skill_prior_guard.py --k 16 ddi_severity:3                                # 16 records
    python benchmarks/skill_prior_guard.py --k 256 ddi_severity:1        # the first 64 of 256, as train_router
    python benchmarks/skill_prior_guard.py --table                  # the stored cells as docs/DEFAULTS.md's table

`train_router` starts the router from `softmax(-loss / 0.25)` over the skills only where the best skill's loss on the
first 64 training records is at least `SKILL_PRIOR_MIN_GAIN` (7 %) below the uniform mix's (the router's
zero-initialised start) and the per-record gain has a paired t of at least `SKILL_PRIOR_MIN_T` (4). This script
measures both on the same 64 records as the few-shot cells (`subsample(..., 64, seed)`, the order `train_router` sees
them in), for every skill (exactly `train_router`'s `skill_prior`) or for the named one (2 passes instead of 13; the
best skill known from a full run or a router's log). Results are merged into
`benchmarks/results/skill_prior_guard.json` under `task:seed` (`task:seed:k=16` for another `--k`; seed 42 at k 64
is the first 64 records of the all-records cells), read by docs/DEFAULTS.md and the README's scoreboard.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


HERE = Path(__file__).resolve().parent
OUT = HERE / "results" / "skill_prior_guard.json"


def table(found: dict) -> str:
    """One row per task and k: the best skill, each seed's gain and paired t, and what the rule decided (seed 42: the
    first 64 records of the all-records cells)."""
    from samdkif_peft.data.tasks import TASKS

    rows = {}
    for key, cell in found.items():
        task, seed, *_ = key.split(":")
        rows.setdefault((task, cell["k"]), []).append((int(seed), cell))
    lines = ["| task | seen | k | best skill | seed: gain, paired t | prior |", "|---|---|---|---|---|---|"]
    for (task, k), cells in sorted(rows.items(), key=lambda item: -max(c["gain"] for _, c in item[1])):
        cells.sort(key=lambda pair: pair[0])
        decided = {"used" if c["prior_applies"] else "uniform" for _, c in cells}
        shown = "; ".join(f"{seed}: {c['gain']:+.1%}, t {c['paired_t']:.2f}" for seed, c in cells)
        best = ", ".join(sorted({c["best"] for _, c in cells}))
        seen = "no" if TASKS[task].unseen else "yes"
        lines.append(f"| {task} | {seen} | {k} | {best} | {shown} | {' / '.join(sorted(decided))} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cells", nargs="*", help="task:seed, or task:seed:skill to score one skill and the mix")
    parser.add_argument("--skills-dir", default="release/skills")
    parser.add_argument("--k", type=int, default=64)
    parser.add_argument("--table", action="store_true", help="print the stored cells as a markdown table")
    args = parser.parse_args()
    if args.table:
        print(table(json.loads(OUT.read_text())))
        return
    if not args.cells:
        parser.error("name task:seed cells to score, or --table")
    sys.path.insert(0, str(HERE))

    import torch
    from peft import get_peft_model
    from study_label_tasks import subsample

    from samdkif_peft.base_model import resolve_base_model
    from samdkif_peft.data import load_task
    from samdkif_peft.skills.shipped import parse_skill_arguments
    from samdkif_peft.training.common import DEFAULT_ROUTER_MAX_LENGTH, load_model_and_tokenizer, prepare_splits
    from samdkif_peft.training.train_router import (
        DEFAULT_SKILL_PRIOR_RECORDS,
        mixture_losses,
        paired_t,
        skill_fits,
        skill_prior,
    )
    from samdkif_peft.tuner import SkillRouterConfig

    torch.set_num_threads(os.cpu_count() or 1)
    skills = {name: str(Path(ref).resolve()) for name, ref in parse_skill_arguments([args.skills_dir]).items()}
    model, tokenizer = load_model_and_tokenizer(resolve_base_model(None), "bfloat16")
    model = get_peft_model(model, SkillRouterConfig(skills=skills, task_type="CAUSAL_LM")).eval()
    found = json.loads(OUT.read_text()) if OUT.is_file() else {}
    for cell in args.cells:
        task, seed, *named = cell.split(":")
        train, _ = prepare_splits(subsample(load_task(task), args.k, int(seed)), tokenizer, DEFAULT_ROUTER_MAX_LENGTH)
        records = min(args.k, DEFAULT_SKILL_PRIOR_RECORDS)  # train_router scores the first 64 of the k records
        if not named:
            prior = skill_prior(model, list(skills), tokenizer, train, records, DEFAULT_ROUTER_MAX_LENGTH)
            losses, uniform, t = prior["losses"], prior["uniform_loss"], prior["paired_t"]
        else:  # the same computation as `skill_prior`, for one skill and the uniform mix
            mixtures = [{named[0]: 1.0}, {n: 1 / len(skills) for n in skills}]
            (loss, uniform), (rows, uniform_rows) = mixture_losses(
                model, tokenizer, train, records, DEFAULT_ROUTER_MAX_LENGTH, mixtures
            )
            losses, t = {named[0]: loss}, paired_t(rows, uniform_rows)
        best = min(losses, key=losses.get)
        gain, fits = 1 - losses[best] / uniform, skill_fits(losses[best], uniform, t)
        found[f"{task}:{seed}" + ("" if args.k == 64 else f":k={args.k}")] = {
            "k": args.k, "records": records, "losses": losses, "uniform_loss": uniform, "best": best, "gain": gain,
            "paired_t": t, "prior_applies": fits, "all_skills_scored": not named,
        }  # fmt: skip
        print(f"{task} seed {seed}: best {best} {losses[best]:.3f}, uniform mix {uniform:.3f}, gain {gain:+.1%}, "
              f"paired t {t:.2f} -> {'prior' if fits else 'uniform start'}", flush=True)  # fmt: skip
        OUT.write_text(json.dumps(dict(sorted(found.items())), indent=1) + "\n")


if __name__ == "__main__":
    main()
