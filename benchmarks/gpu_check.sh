#!/usr/bin/env bash
# Issue 16's GPU figures and the GPU path's tests in one run, for a lent CUDA machine (the
# `device` tool: ~10 minutes on an H200, within one command's limit). From the repo root:
#   PYTHONUNBUFFERED=1 bash benchmarks/gpu_check.sh 2>&1 | tee $OUT/gpu_check.log
# It uses that machine's own python3 (torch with CUDA, numpy, scipy, scikit-learn,
# safetensors, tqdm, pytest are there) and this checkout through PYTHONPATH: nothing to
# install. DEVICE, SHAPE, STEPS, N override the defaults (a dry run on CPU:
# DEVICE=cpu SHAPE=small STEPS=2 N=4096 bash benchmarks/gpu_check.sh).
set -u
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
PY=${PY:-python3}
DEVICE=${DEVICE:-cuda}
SHAPE=${SHAPE:-gpu}
STEPS=${STEPS:-12}
N=${N:-65536}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
# the GPU path's results against the CPU kernels (each test also runs on cuda when present)
timeout 240 "$PY" -m pytest tests/test_device_paths.py -q -x -p no:cacheprovider
for precision in fp32 bf16; do
    timeout 300 "$PY" benchmarks/train_throughput.py --device "$DEVICE" --shapes "$SHAPE" \
        --steps "$STEPS" --precision "$precision"
    timeout 200 "$PY" benchmarks/encode_throughput.py --device "$DEVICE" --shapes "$SHAPE" \
        --n "$N" --reps 3 --precision "$precision" --activations topk batchtopk
done
