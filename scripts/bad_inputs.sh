#!/usr/bin/env bash
# Every bad input the app rejects before any work, and the one line it answers with.
#   bash scripts/bad_inputs.sh
cases=(
  "algo=dpoo"
  "task=poetry"
  "model=huge"
  "algo.bta=0.2"
  "+algo.typo=3"
  "budget.amount=0"
  "budget.unit=joules"
  "budget.eval_every=1.5"
  "algo=grpo algo.group_size=1"
  "algo=ppo algo.batch_size=12 algo.minibatches=5"
  "algo=grpo algo.minibatches=3"
  "precision=fp16"
  "task=sentiment reward=verifiable"
  "model=hub"
  "model=hub model.name=/nonexistent/model"
  "cache_dir=/proc/rlhf-bench-cache"
  "device=cuda"
  "device=gpu"
  "checkpoint_every=0"
  "eval.batch_size=0"
  "task=arithmetic task.digits=1"
  "sft.steps=0"
  "algo=rloo algo.group_size=1"
  "algo=reinforce_pp algo.group_size=3"
  "task=positive_sentiment"
  "task=hh_rlhf model=smollm2"
  "model=hub model.name=no_such_package/model.gguf"
)
for c in "${cases[@]}"; do
  # shellcheck disable=SC2086
  out=$(rlhf-bench $c hydra.sweep.dir=/tmp/rlhf-bench-bad-input 2>&1 >/dev/null)
  status=$?
  line=$(printf '%s\n' "$out" | grep -v -e '^$' -e 'HYDRA_FULL_ERROR' -e '^Config search path' -e 'provider=' | head -n 2 | tr '\n' ' ')
  printf '| `%s` | %s | %s |\n' "$c" "$status" "$line"
done
