#!/usr/bin/env bash
# The published tuned comparison (the README's headline, docs/results.md): rlhf-bench-tune on both built-in
# tasks, small preset, default budget; per algorithm 4 Optuna trials on stage seed 3 / seed 0, then the
# best configuration and the default settings on trainer seed 1 × stage seeds 0, 1, 2 (30 runs a task).
#   bash scripts/tuned_comparison.sh [tune root, default multirun/tune]
# Finished runs of the same identity are reused; a killed protocol resumes where it stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
root=${1:-multirun/tune}
for task in sentiment arithmetic; do
  python -m bench.tune "task=$task" tune.trials=4 tune.seeds=1 "tune.dir=$root/$task"
  python -m bench.results "$root/$task" --out "results/tuned/$task"
done
