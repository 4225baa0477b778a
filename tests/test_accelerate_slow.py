"""Skill and router training run unchanged under `accelerate launch --multi_gpu --num_processes 2 -m samdkif_cli ...`
on a CPU-only machine (two processes, gloo) and leave the same artifacts as a single process: real SmolLM2 and built
data, two optimizer steps each.

Run with `pytest -m slow tests/test_accelerate_slow.py` (a few minutes on 2 cores once the model and data exist).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
TINY = ["--max-steps", "2", "--max-train-samples", "16", "--max-eval-samples", "8", "--batch-size", "2"]


def _samdkif(args: list[str], processes: int) -> None:
    env = {**os.environ, "TRANSFORMERS_VERBOSITY": "error", "OMP_NUM_THREADS": "1"}
    launcher = [sys.executable, "-m", "samdkif_cli"]
    if processes > 1:
        # accelerate 1.x starts several CPU processes through its torchrun path (`--multi_gpu`; `--cpu` would run
        # one); the Trainer (use_cpu) then joins them with gloo.
        accelerate = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes",
                      str(processes), "--num_machines", "1", "--mixed_precision", "no",
                      "--dynamo_backend", "no"]  # fmt: skip
        launcher = [*accelerate, "-m", "samdkif_cli"]
    done = subprocess.run([*launcher, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-4000:]


def _layout(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and "checkpoints" not in p.parts}


def test_two_processes_train_skill_and_router_with_the_same_layout(built_nli_ddi, tmp_path):
    for processes in (1, 2):
        out = tmp_path / f"p{processes}"
        _samdkif(["train", "skill", "nli", "--out", str(out / "skill"), *TINY], processes)
        _samdkif(["train", "router", "ddi_severity", "--skills", f"nli={out / 'skill'}", "--out", str(out / "router"),
                  *TINY], processes)  # fmt: skip
    for part in ("skill", "router"):
        single, double = tmp_path / "p1" / part, tmp_path / "p2" / part
        assert _layout(single) == _layout(double) and {"adapter_config.json", "adapter_model.safetensors"} <= _layout(
            single
        )
        results = json.loads((double / "train_results.json").read_text())
        assert results["global_step"] == 2 and results["world_size"] == 2  # really two processes
        assert json.loads((single / "train_results.json").read_text())["world_size"] == 1
    from peft import PeftModel

    import samdkif_peft  # noqa: F401
    from samdkif_peft.base_model import load_base_model

    model, _ = load_base_model()
    assert PeftModel.from_pretrained(model, str(tmp_path / "p2" / "router")).peft_config["default"].skills
