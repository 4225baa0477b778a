#!/usr/bin/env bash
# Create .venv with the CPU build of torch first (a plain `torch` requirement would pull GBs of CUDA wheels),
# then this package with its test extras. Idempotent: re-running only checks what is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
# TORCH_PIP_ARGS: extra pip arguments for torch alone, e.g. "--index-url https://download.pytorch.org/whl/cpu" where
# pip's only index is PyPI (whose Linux torch is the CUDA build).
# shellcheck disable=SC2086
.venv/bin/python -m pip install -q --disable-pip-version-check ${TORCH_PIP_ARGS:-} "torch==2.13.0"
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[test]"
.venv/bin/python -c "import torch, samdkif_peft; assert torch.__version__.startswith('2.13.0'), torch.__version__"
