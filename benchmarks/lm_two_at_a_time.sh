#!/usr/bin/env bash
# Two language-model trainings side by side, one thread each, against one training on all the
# cores: the throughput of `memn2n sweep ptb --workers 2` (two cells at a time) against
# `--workers 1` (one cell on both threads) on a 2-core machine. Two rounds, each printing the
# tokens/s of `memn2n train ptb --json` (150 units, 5 hops, memory 100, 600 steps).
#
#   PTB_DIR=path/to/ptb bash benchmarks/lm_two_at_a_time.sh
#
# Run it with nothing else on the machine (pause a training: kill -STOP, then kill -CONT).
set -euo pipefail
cd "$(dirname "$0")/.."
ptb=${PTB_DIR:-../shared/data/ptb}
memn2n=${MEMN2N:-.venv/bin/memn2n}
runs=$(mktemp -d)
trap 'rm -rf "$runs"' EXIT
train() {  # THREADS NAME: one training, its tokens/s
    OMP_NUM_THREADS=$1 "$memn2n" train ptb --data-dir "$ptb" --dim 150 --hops 5 --memory-size 100 --max-steps 600 \
        --json --out "$runs/$2" 2>/dev/null | python3 -c "import json, sys; print(round(json.load(sys.stdin)['tokens_per_second']))"
}
for round in 1 2; do
    rm -rf "${runs:?}"/*
    echo "round $round: one training on $(nproc) threads: $(train "$(nproc)" one) tokens/s"
    train 1 a > "$runs/a.txt" & train 1 b > "$runs/b.txt" & wait
    echo "round $round: two trainings on 1 thread each: $(cat "$runs/a.txt") + $(cat "$runs/b.txt") tokens/s"
done
