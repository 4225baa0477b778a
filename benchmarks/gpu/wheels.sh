#!/usr/bin/env bash
# Fill .whl/ with the Python 3.12 wheels the GPU machine lacks (it has torch, accelerate, tokenizers and safetensors,
# but older transformers / peft / huggingface_hub than this package needs), for `run`'s `carry: [".whl"]`.
# About 23 MB. Run here, where pip reaches the package index; the GPU machine reaches nothing.
set -euo pipefail
cd "$(dirname "$0")/../.."
EXCLUDE="$(git rev-parse --git-common-dir)/info/exclude"  # so .whl/ never lands in a commit
mkdir -p "$(dirname "$EXCLUDE")"
grep -qx '/.whl/' "$EXCLUDE" 2>/dev/null || echo '/.whl/' >> "$EXCLUDE"
PY=${PYTHON:-.venv/bin/python}
"$PY" -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d .whl \
    transformers==5.25.0 peft==0.21.2 huggingface_hub==2.4.0 httpx2==2.17.0 httpcore2==2.17.0 kernels==0.19.1 \
    truststore tomlkit "regex>=2025.10.22" "hf-xet>=1.6" "click>=8.4.2"
du -sh .whl
