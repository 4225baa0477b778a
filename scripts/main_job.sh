#!/usr/bin/env bash
# The product's main job on embedded defaults: a user's own task in one command. Here the task is an unseen one of
# ours (DDI severity, ANSM thesaurus), written out as the JSONL files a user would bring; the router mixes the twelve
# released skills (release/skills) and is compared with the base model and a task LoRA on the same data and steps.
# Extra arguments go to `samdkif router train` (e.g. --max-steps 20 --eval-limit 32 for a quick look).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/main-job}
.venv/bin/samdkif model prepare
.venv/bin/samdkif data export ddi_severity --out "$OUT/data"
.venv/bin/samdkif router train --train "$OUT/data/train.jsonl" --validation "$OUT/data/validation.jsonl" \
    --test "$OUT/data/test.jsonl" --out "$OUT/ddi_severity" --name ddi_severity --baseline task-lora "$@"
