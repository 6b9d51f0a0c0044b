#!/usr/bin/env bash
# The published default comparison, from nothing to results/: both built-in tasks × PPO, GRPO, DPO ×
# 3 stage seeds × 2 trainer seeds (36 runs, small preset, 2e12 FLOPs each), then the tables and plots.
#   bash scripts/default_comparison.sh [sweep dir, default multirun/default]
# Finished runs of the same identity in the sweep directory are reused; a killed sweep resumes.
set -euo pipefail
cd "$(dirname "$0")/.."
sweep=${1:-multirun/default}
start=$(date +%s)
rlhf-bench task=sentiment,arithmetic "hydra.sweep.dir=$sweep"
rlhf-bench-results "$sweep" --out results
echo "default comparison: $(( $(date +%s) - start )) s wall, results in results/"
