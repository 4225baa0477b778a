"""The example scripts run as a user runs them: real SmolLM2, real data, the stock Trainer, a few steps each.

Run with `pytest -m slow tests/test_examples_slow.py` (about 3-4 minutes on 2 cores once the model and data exist).
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
TINY = ["--max_steps", "2", "--max_train_samples", "16", "--per_device_train_batch_size", "4", "--use_cpu",
        "--bf16", "--report_to", "none", "--save_strategy", "no"]  # fmt: skip


def _run(*args: str) -> str:
    env = {**os.environ, "TRANSFORMERS_VERBOSITY": "error"}
    done = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_train_skill_router_and_evaluate_examples(built_nli_ddi, tmp_path):
    skill = tmp_path / "skills" / "nli"
    _run("examples/train_skill.py", "--skill", "nli", "--peft_type", "lora", "--output_dir", str(skill), *TINY)
    assert json.loads((skill / "adapter_config.json").read_text())["peft_type"] == "LORA"

    hybrid = tmp_path / "hybrid"
    out = _run("examples/train_router.py", "--task", "ddi_severity", "--skills_dir", str(skill.parent),
               "--task_rank", "4", "--output_dir", str(hybrid), *TINY)  # fmt: skip
    assert "routing" in out
    config = json.loads((hybrid / "adapter_config.json").read_text())
    assert config["peft_type"] == "SKILL_ROUTER" and config["task_rank"] == 4

    out = _run("examples/evaluate_task.py", "--task", "ddi_severity", "--adapter", str(hybrid), "--limit", "8")
    assert '"prediction_counts"' in out and '"generation"' in out
