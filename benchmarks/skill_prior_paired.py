"""A paired test for the skill prior's guard: per-record answer losses of the best skill and of the uniform mix.

    python benchmarks/skill_prior_paired.py ddi_severity:3:16:relation_extraction \\
        hpo_definition_qa:1:64:question_answering

Each cell is `task:seed:k:skill` (the study's `subsample(task, k, seed)`, the records `train_router`'s prior sees).
Prints the gain of the skill over the uniform mix (mean of per-record losses) and the paired t statistic of the
per-record differences, and writes them to `results/skill_prior_paired.json`. The guard today uses the gain alone
(7 %), which with 16 records fired on a task no skill fits (DDI seed 3); this measures whether a t threshold would
separate the cells (docs/MEDICAL_VALUE.md §20).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


HERE = Path(__file__).resolve().parent


def main() -> None:
    import torch
    from peft import get_peft_model

    sys.path.insert(0, str(HERE))
    from study_label_tasks import subsample

    from samdkif_peft.base_model import resolve_base_model
    from samdkif_peft.data import load_task
    from samdkif_peft.skills.shipped import parse_skill_arguments
    from samdkif_peft.training.collators import DataCollatorForCompletion
    from samdkif_peft.training.common import DEFAULT_ROUTER_MAX_LENGTH, load_model_and_tokenizer, prepare_splits
    from samdkif_peft.tuner import SkillRouterConfig

    shipped = parse_skill_arguments([str(HERE.parent / "release" / "skills")])
    skills = {name: str(Path(ref).resolve()) for name, ref in shipped.items()}
    model, tokenizer = load_model_and_tokenizer(resolve_base_model(None), "bfloat16")
    model = get_peft_model(model, SkillRouterConfig(skills=skills, task_type="CAUSAL_LM")).eval()
    collator = DataCollatorForCompletion(tokenizer, max_length=DEFAULT_ROUTER_MAX_LENGTH)
    out_path = HERE / "results" / "skill_prior_paired.json"
    found = json.loads(out_path.read_text()) if out_path.is_file() else {}
    for cell in sys.argv[1:]:
        task, seed, k, best = cell.split(":")
        data = subsample(load_task(task), int(k), int(seed))
        train, _ = prepare_splits(data, tokenizer, DEFAULT_ROUTER_MAX_LENGTH)
        rows = [train[i] for i in range(min(int(k), len(train)))]
        losses = {}
        for name, weights in (("best", {best: 1.0}), ("uniform", {n: 1 / len(skills) for n in skills})):
            with torch.no_grad(), model.base_model.force_skill_weights(weights):
                losses[name] = [float(model(**collator([row])).loss.float()) for row in rows]
        diff = torch.tensor(losses["uniform"]) - torch.tensor(losses["best"])
        t = float(diff.mean() / (diff.std() / len(diff) ** 0.5))
        gain = 1 - sum(losses["best"]) / sum(losses["uniform"])
        found[cell] = {"gain": gain, "t": t, "records": len(diff)}
        print(f"{cell}: gain {gain:+.1%}, paired t {t:.2f} over {len(diff)} records", flush=True)
        out_path.write_text(json.dumps(dict(sorted(found.items())), indent=1) + "\n")


if __name__ == "__main__":
    main()
