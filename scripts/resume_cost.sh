#!/usr/bin/env bash
# What a resume costs: one run uninterrupted, the same run killed (SIGKILL) after its first
# checkpoint and started again; prints both wall times and the resumed run's final metrics match.
#   bash scripts/resume_cost.sh
set -euo pipefail
dir=$(mktemp -d)
args=(stage_seed=0 seed=0 model=tiny task.n_train=500 task.n_eval=64 sft.steps=150 prefs.n_pairs=256 algo=grpo budget.amount=1.5e11
      checkpoint_every=0.25 logger.wandb_mode=disabled "cache_dir=$dir/cache")
rlhf-bench "${args[@]}" "hydra.sweep.dir=$dir/warm" >/dev/null 2>&1   # build the stages once
start=$(date +%s.%N); rlhf-bench "${args[@]}" "hydra.sweep.dir=$dir/whole" >/dev/null 2>&1; whole=$(echo "$(date +%s.%N) - $start" | bc)
setsid rlhf-bench "${args[@]}" "hydra.sweep.dir=$dir/killed" >/dev/null 2>&1 &
pid=$!
until ls "$dir"/killed/*/checkpoint.pt >/dev/null 2>&1; do sleep 0.05; done
kill -9 -- -"$pid" 2>/dev/null || kill -9 "$pid"; wait "$pid" 2>/dev/null || true
start=$(date +%s.%N); rlhf-bench "${args[@]}" "hydra.sweep.dir=$dir/killed" >/dev/null 2>&1; resumed=$(echo "$(date +%s.%N) - $start" | bc)
python - "$dir" "$whole" "$resumed" <<'PY'
import json, sys, glob
d, whole, resumed = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
a, b = (json.load(open(glob.glob(f"{d}/{k}/*/summary.json")[0])) for k in ("whole", "killed"))
same = {k: v for k, v in a["final"].items() if k.startswith("eval/")} == {k: v for k, v in b["final"].items() if k.startswith("eval/")}
rows = [json.loads(line) for line in open(glob.glob(f"{d}/whole/*/metrics.jsonl")[0])]
total = max(r.get("compute/iterations", 0) for r in rows)
left = 1 - b["resumed_at_iteration"] / total
print(f"uninterrupted: {whole:.1f} s for {total} iterations; killed after {b['resumed_at_iteration']}, the restart took {resumed:.1f} s "
      f"for the remaining {left:.0%}: overhead ~{resumed - left * whole:.1f} s; final eval metrics identical: {same}")
PY
