#!/usr/bin/env bash
# The product's main job on embedded defaults: a user's own task in one command. Here the task is an unseen one of
# ours (DDI severity, ANSM thesaurus), written out as the JSONL files a user would bring; the router mixes the twelve
# released skills (release/skills) and is compared with the base model and a task LoRA on the same data and steps.
# Two epochs, not the command's default one: on this task one epoch leaves both the hybrid and the task LoRA answering
# the majority label on every test pair, two make both discriminate (docs/MEDICAL_VALUE.md, section 9).
# Extra arguments go to `samdkif router train` (e.g. --max-steps 20 --eval-limit 32 for a quick look). A run on the
# defaults (no extra arguments, a --out folder that did not exist) also copies its report, figure and wall time to
# benchmarks/results/main_job/, which `python scripts/update_readme.py` renders into the README.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/main-job}
start=$SECONDS
fresh=1; [ -e "$OUT/ddi_severity" ] && fresh=0  # a resumed run's wall time would misstate the job's
.venv/bin/samdkif model prepare
.venv/bin/samdkif data export ddi_severity --out "$OUT/data"
.venv/bin/samdkif router train --train "$OUT/data/train.jsonl" --validation "$OUT/data/validation.jsonl" \
    --test "$OUT/data/test.jsonl" --out "$OUT/ddi_severity" --name ddi_severity --baseline task-lora --epochs 2 "$@"
if [ $# -eq 0 ] && [ $fresh -eq 1 ]; then
    .venv/bin/python scripts/record_main_job.py "$OUT/ddi_severity" $((SECONDS - start))
fi
