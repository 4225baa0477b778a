"""What the knowledge-skill studies share (`ddi_knowledge_skill.py`, `rare_disease_knowledge_skill.py`): train a
skill from a folder of `train.jsonl` / `validation.jsonl` records, and lay out the released skills plus one more."""

from __future__ import annotations

import shutil
from pathlib import Path


def train_knowledge_skill(
    name: str, data: Path, skill_dir: Path, committed: Path, epochs: float, rate: float, rank: int = 8
) -> None:
    """LoRA r8 on q,v (the released recipe; `rank`: another rank, alpha twice it as in the recipe), several passes
    over the records; resumes from its checkpoints; copies the committed adapter (`committed`, no optimizer state)
    instead of training when there is one."""
    if not (skill_dir / "adapter_model.safetensors").is_file() and (committed / "adapter_model.safetensors").is_file():
        shutil.copytree(committed, skill_dir, dirs_exist_ok=True)
        print(f"{skill_dir}: copied the committed adapter from {committed}")
        return
    from datasets import load_dataset

    from samdkif_peft.base_model import resolve_base_model
    from samdkif_peft.training import train_skill
    from samdkif_peft.training.train_skill import default_lora_config

    dataset = load_dataset("json", data_files={s: str(data / f"{s}.jsonl") for s in ("train", "validation")})
    has_checkpoint = any((skill_dir / "checkpoints").glob("checkpoint-*"))
    train_skill(name, resolve_base_model(None), skill_dir, dataset=dataset,
                peft_config=None if rank == 8 else default_lora_config(r=rank, lora_alpha=2 * rank),
                training_args={"num_train_epochs": epochs, "learning_rate": rate, "save_steps": 100,
                               "eval_steps": 400, "seed": 42},
                resume_from_checkpoint=has_checkpoint or None)  # fmt: skip


def link_skills(folder: Path, name: str, thirteenth: Path, released: Path = Path("release/skills")) -> None:
    """`folder`: symlinks to every released skill and to `thirteenth` as `name` (a skills folder for the study)."""
    folder.mkdir(parents=True, exist_ok=True)
    for link, target in [*((sub.name, sub) for sub in sorted(released.iterdir())), (name, thirteenth)]:
        if not (folder / link).exists():
            (folder / link).symlink_to(target.resolve())
    print(folder, sorted(p.name for p in folder.iterdir()))
