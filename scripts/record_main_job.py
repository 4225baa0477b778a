"""Copy a default main-job run's report and figure to benchmarks/results/main_job/, with its wall time.

    python scripts/record_main_job.py RUN_FOLDER SECONDS      (called by scripts/main_job.sh)

A stage that was already done when the job started (resumed run) makes the time meaningless, so the run's own stage
times are recorded beside it and the README says which one it shows.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
TARGET = ROOT / "benchmarks" / "results" / "main_job"


def main() -> None:
    run, seconds = Path(sys.argv[1]), int(sys.argv[2])
    TARGET.mkdir(parents=True, exist_ok=True)
    for name in ("report.json", "report.md", "routing.png"):
        shutil.copyfile(run / name, TARGET / name)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT)
    timing = {
        "wall_seconds": seconds,
        "stage_seconds": json.loads((run / "report.json").read_text()).get("seconds", {}),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "commit": commit.stdout.strip(),
        "command": "bash scripts/main_job.sh",
    }
    (TARGET / "timing.json").write_text(json.dumps(timing, indent=1) + "\n")
    print(f"main job recorded in {TARGET} ({seconds} s)")


if __name__ == "__main__":
    main()
