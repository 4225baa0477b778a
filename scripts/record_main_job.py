"""Copy a default main-job run's report and figure to benchmarks/results/main_job/, with its wall time.

    python scripts/record_main_job.py RUN_FOLDER SECONDS      (called by scripts/main_job.sh)

A stage that was already done when the job started (a resumed run) makes the wall time meaningless, so each stage's own
time (training and scoring, from the run's report) is recorded beside it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from samdkif_peft.utils import cpu_description


ROOT = Path(__file__).resolve().parents[1]
TARGET = ROOT / "benchmarks" / "results" / "main_job"


def main() -> None:
    run, seconds = Path(sys.argv[1]), int(sys.argv[2])
    report = json.loads((run / "report.json").read_text())
    TARGET.mkdir(parents=True, exist_ok=True)
    for name in ("report.json", "report.md", "routing.png"):
        shutil.copyfile(run / name, TARGET / name)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT)
    timing = {
        "wall_seconds": seconds,
        "stage_seconds": {
            **{f"train_{name}": row.get("stage_seconds") for name, row in report.get("training", {}).items()},
            **report.get("seconds", {}),
        },
        "cpu": cpu_description(),
        "cpu_count": os.cpu_count(),
        "commit": commit.stdout.strip(),
        "command": "bash scripts/main_job.sh",
    }
    (TARGET / "timing.json").write_text(json.dumps(timing, indent=1) + "\n")
    print(f"main job recorded in {TARGET} ({seconds} s)")


if __name__ == "__main__":
    main()
