#!/usr/bin/env bash
# PPO, GRPO and DPO on the real pretrained model that runs here offline (SmolLM2-135M-Instruct, model=smollm2) and
# the real-text task judged by VADER (task=positive_sentiment), at equal FLOPs, on a CPU: a small budget, one stage
# seed, one trainer seed. The instruct model is π_sft (sft.steps=0); every algorithm gets lr 1e-6, as for a
# pretrained 135 M model (the presets' defaults are 50-500x that).
#   bash scripts/smollm2_comparison.sh [sweep dir, default multirun/smollm2]
set -euo pipefail
cd "$(dirname "$0")/.."
sweep=${1:-multirun/smollm2}
common=(model=smollm2 task=positive_sentiment sft.steps=0 task.n_train=256 task.n_eval=32 task.n_val=16
        prefs.n_pairs=256 rm.epochs=1 rm.batch_size=8 rm.lr=1e-5 budget.amount=5e13 budget.eval_every=0.5
        stage_seed=0 seed=0 "hydra.sweep.dir=$sweep")
start=$(date +%s)
rlhf-bench algo=ppo algo.batch_size=16 algo.epochs=1 algo.lr=1e-6 algo.critic_lr=1e-6 "${common[@]}"
rlhf-bench algo=grpo algo.prompts_per_step=4 algo.group_size=4 algo.lr=1e-6 "${common[@]}"
rlhf-bench algo=dpo algo.batch_size=8 algo.lr=1e-6 "${common[@]}"
rlhf-bench-results "$sweep" --out "$sweep/results"
echo "smollm2 comparison: $(( $(date +%s) - start )) s wall, results in $sweep/results"
