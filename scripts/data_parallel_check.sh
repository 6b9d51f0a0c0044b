#!/usr/bin/env bash
# One run on two processes against one process with twice the batch, every algorithm, on the tiny preset (the setting
# of tests/test_distributed.py), and one process on trainer seed 1 for the seed-to-seed spread; prints final gold reward,
# KL and the steps, samples and FLOPs at the budget of each.
#   bash scripts/data_parallel_check.sh [output dir, default multirun/data_parallel]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-multirun/data_parallel}
common=(model=tiny task.n_train=600 task.n_eval=64 task.n_val=32 sft.steps=150 prefs.n_pairs=256 budget.amount=2e10
        logger.wandb_mode=disabled "cache_dir=$out/cache" stage_seed=0)
export OMP_NUM_THREADS=1
python -m torch.distributed.run --nproc_per_node 2 -m bench.app "${common[@]}" seed=0 algo=ppo,grpo,dpo,rloo,reinforce_pp,best_of_n \
    "hydra.sweep.dir=$out/two_processes"
for pair in ppo:algo.batch_size=128 grpo:algo.prompts_per_step=32 dpo:algo.batch_size=64 rloo:algo.prompts_per_step=32 \
            reinforce_pp:algo.batch_size=128 best_of_n:algo.prompts_per_step=64; do
    rlhf-bench "${common[@]}" seed=0,1 "algo=${pair%%:*}" "${pair#*:}" "hydra.sweep.dir=$out/one_process"
done
python - "$out" <<'PY'
import json, sys
from pathlib import Path
rows = []
for path in sorted(Path(sys.argv[1]).glob("*/*/summary.json")):
    s = json.loads(path.read_text())
    f, last = s["final"], s["last_eval"]
    rows.append((s["algo"], s.get("settings", {}).get("processes", 1), s["seed"], f["eval/gold_reward"], f["eval/kl_to_ref"],
                 last["compute/steps"], last["compute/samples"], last["compute/flops"]))
print("| algo | processes | seed | gold | KL | steps | samples | FLOPs (last evaluation) |\n|---|---|---|---|---|---|---|---|")
for algo, p, seed, gold, kl, steps, samples, flops in sorted(rows):
    print(f"| {algo} | {p} | {seed} | {gold:.4f} | {kl:.4f} | {steps} | {samples} | {flops:.4g} |")
PY
