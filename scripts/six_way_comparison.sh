#!/usr/bin/env bash
# The published six-way comparison (docs/results.md, "Six algorithms"): PPO, GRPO, DPO, RLOO, REINFORCE++ and
# best-of-N at their default settings, small preset, 2e12 FLOPs per run, trainer seed 1 × stage seeds 0, 1, 2
# on both built-in tasks, then the tables and plots into results/six.
#   bash scripts/six_way_comparison.sh [sweep root, default multirun/six] [arithmetic tune dir, default multirun/tune/arithmetic]
# Arithmetic's PPO, GRPO and DPO runs are the tuned comparison's `default` runs (the same configurations and
# seeds): run into that directory, they are reused when scripts/tuned_comparison.sh has made them.
set -euo pipefail
cd "$(dirname "$0")/.."
root=${1:-multirun/six}
tune=${2:-multirun/tune/arithmetic}
start=$(date +%s)
rlhf-bench +comparison=all task=sentiment stage_seed=0,1,2 seed=1 "hydra.sweep.dir=$root/sentiment"
rlhf-bench algo=rloo,reinforce_pp,best_of_n task=arithmetic stage_seed=0,1,2 seed=1 "hydra.sweep.dir=$root/arithmetic"
for algo in ppo grpo dpo; do
  rlhf-bench "algo=$algo" task=arithmetic stage_seed=0,1,2 seed=1 "hydra.sweep.dir=$tune/default/$algo"
done
rlhf-bench-results "$root/sentiment" "$root/arithmetic" "$tune/default" --out results/six
echo "six-way comparison: $(( $(date +%s) - start )) s wall, results in results/six/"
