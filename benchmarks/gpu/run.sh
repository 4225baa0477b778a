#!/usr/bin/env bash
# Issue 8's GPU table in one device call: `bash benchmarks/gpu/run.sh [eager|compile]` on the GPU machine, with
# `carry: [".whl"]` (filled here first by `bash benchmarks/gpu/wheels.sh`). Random weights in SmolLM2-135M's shape,
# 12 LoRA r8 skills on q_proj/v_proj, bf16; batch 1 decode and a 32 x 512 forward, tokens/s beside the ratios.
#   eager   (default) every variant, the skill-count and rank tables, training memory: about 5 minutes on an H100
#   compile the base model and the routers wrapped in torch.compile, against the compiled base
# Results land in $OUT (the device tool's folder) or runs/gpu; copy the JSON to benchmarks/results/ and run
# `python scripts/update_readme.py`.
set -euo pipefail
cd "$(dirname "$0")/../.."
MODE=${1:-eager}
OUT=${OUT:-runs/gpu}
mkdir -p "$OUT"
export USE_HUB_KERNELS=NO PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
if [ -d .whl ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site:$PWD
else
    export PYTHONPATH=$PWD
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python3 -c "import torch, transformers, peft; print('torch', torch.__version__, 'transformers', transformers.__version__, 'peft', peft.__version__)"
ARGS="--device cuda --batch 32 --seq 512 --threads 16"
if [ "$MODE" = compile ]; then
    python3 benchmarks/bench_router.py $ARGS --compile --only "torch.compile" --scaling 12 --ranks 8 \
        --out "$OUT/router_speed_gpu_compile.json" 2>&1 | tee "$OUT/bench_compile.log"
else
    python3 benchmarks/bench_router.py $ARGS --out "$OUT/router_speed_gpu.json" 2>&1 | tee "$OUT/bench.log"
fi
