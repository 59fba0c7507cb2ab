#!/usr/bin/env bash
# The language model on a GPU: its speed, then as much of the paper's best PTB model (150 units,
# 7 hops, memory 200) as about 9 minutes of training allow, evaluated on valid and test.
#
#   PTB_DIR=path/to/ptb bash benchmarks/gpu_lm.sh [RUN_DIR]
#   DEVICE=cpu TRAIN_SECONDS=10 PYTHON=.venv/bin/python bash benchmarks/gpu_lm.sh /tmp/x   # a dry run
#
# Needs a CUDA build of torch and the project's dependencies (`pip install -e .`; on the lent
# H200 machine `datasets` is missing: carry its wheel). Prints one JSON line of speed
# (benchmarks/lm_speed.py --device cuda), then trains for the number of steps that
# TRAIN_SECONDS (540) allow at that speed; the run checkpoints when it stops, and
# `memn2n train ptb ... --resume RUN_DIR` continues it anywhere.
set -euo pipefail
cd "$(dirname "$0")/.."
ptb=${PTB_DIR:-../shared/data/ptb}
run=${1:-/tmp/gpu-ptb-150-7-200}
seconds=${TRAIN_SECONDS:-540}
device=${DEVICE:-cuda}
python=${PYTHON:-python3}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
speed=$($python benchmarks/lm_speed.py --device "$device" --data-dir "$ptb" --steps 300)
echo "$speed"
steps=$($python -c "import json, sys; print(int(json.loads(sys.argv[1])['tokens_per_second'] * $seconds / 128))" "$speed")
$python -m memn2n_cli train ptb --data-dir "$ptb" --dim 150 --hops 7 --memory-size 200 --device "$device" \
    --max-steps "$steps" --out "$run" --json
for split in valid test; do $python -m memn2n_cli eval "$run" --split "$split" --json; done
