#!/usr/bin/env bash
# Every bad input the app rejects before any work: its expected exit status and the start of the one line it
# answers with on stderr. Prints a table of what each case gives now; `tests/test_bad_inputs.py` runs the same
# list in one process and holds each case to its expected status and line.
#   bash scripts/bad_inputs.sh
# status | arguments | first line of stderr (its start)
cases=$(cat <<'CASES'
2|algo=dpoo|rlhf-bench: error: unknown algo 'dpoo'; available: best_of_n, dpo, grpo, ppo, reinforce_pp, rloo
2|task=poetry|rlhf-bench: error: unknown task 'poetry'; available: arithmetic, gsm8k, hh_rlhf
2|model=huge|rlhf-bench: error: unknown model 'huge'; available: hub, small, smollm2, smollm2_lora, tiny
2|experiment=nonexistent|rlhf-bench: error: unknown experiment 'nonexistent'; available: qwen05b_gsm8k, qwen05b_ultrafeedback, smollm2_cpu, smollm2_sentiment, tiny
2|algo.bta=0.2|rlhf-bench: error: Could not override 'algo.bta': Key 'bta' not in
2|+algo.typo=3|rlhf-bench: error: unknown key algo.typo; algo accepts:
2|budget.amount=0|rlhf-bench: error: budget.amount must be > 0, got 0.0
2|budget.amount=inf|rlhf-bench: error: budget.amount=inf is out of range: it must be > 0
2|budget=steps budget.amount=0.5|rlhf-bench: error: budget.amount=0.5 optimiser steps buys no step: a steps budget must be >= 1
2|task=sentiment task.decay=nan|rlhf-bench: error: task.decay=nan is out of range: it must be in [0, 1]
2|budget.unit=joules|rlhf-bench: error: Error merging override budget.unit=joules: Invalid value 'joules', expected one of [flops, seconds, steps]
2|budget.eval_every=1.5|rlhf-bench: error: budget.eval_every must be in (0, 1], got 1.5
2|algo=grpo algo.group_size=1|rlhf-bench: error: algo.group_size must be >= 2 (the baseline is the group mean), got 1
2|algo=ppo algo.batch_size=12 algo.minibatches=5|rlhf-bench: error: algo.batch_size 12 is not divisible by algo.minibatches 5
2|algo=grpo algo.minibatches=3|rlhf-bench: error: algo.prompts_per_step 16 is not divisible by algo.minibatches 3
2|algo=grpo algo.lr=-1|rlhf-bench: error: algo.lr=-1.0 is out of range: it must be > 0
2|algo=dpo algo.beta=nan|rlhf-bench: error: algo.beta=nan is out of range: it must be >= 0
2|algo=ppo algo.gamma=1.5|rlhf-bench: error: algo.gamma=1.5 is out of range: it must be in [0, 1]
2|algo=rloo algo.eps=0|rlhf-bench: error: algo.eps=0.0 is out of range: it must be > 0
2|algo=dpo algo.label_smoothing=0.5|rlhf-bench: error: algo.label_smoothing=0.5 is out of range: it must be in [0, 0.5)
2|algo=best_of_n algo.candidates_per_step=0|rlhf-bench: error: algo.
2|sft.lr=0|rlhf-bench: error: sft.lr=0.0 is out of range: it must be > 0
2|prefs.n_pairs=0|rlhf-bench: error: prefs.n_pairs=0 is out of range: it must be >= 1
2|precision=fp16|rlhf-bench: error: Error merging override precision=fp16: Invalid value 'fp16', expected one of [auto, fp32, bf16]
2|task=sentiment reward=verifiable|rlhf-bench: error: reward=verifiable but task sentiment has no checker; use reward=model (or auto)
2|model=hub|rlhf-bench: error: model=hub needs model.name (a hub id or a save_pretrained directory)
2|model=hub model.name=/nonexistent/model|rlhf-bench: error: model.name=/nonexistent/model: no such file or directory
2|model=hub model.name=no_such_package/model.gguf|rlhf-bench: error: model.name='no_such_package/model.gguf': no such file, and no installed package 'no_such_package'
2|prefs.dataset=/nonexistent|rlhf-bench: error: prefs.dataset=/nonexistent: no such file or directory
2|cache_dir=/proc/rlhf-bench-cache|rlhf-bench: error: cache_dir /proc/rlhf-bench-cache is not writable
2|hydra.sweep.dir=/proc/rlhf-bench-sweep|rlhf-bench: error: hydra.sweep.dir=/proc/rlhf-bench-sweep is not writable
2|device=cuda|rlhf-bench: error: device=cuda but no CUDA device is visible; use device=cpu or device=auto
2|device=gpu|rlhf-bench: error: Error merging override device=gpu: Invalid value 'gpu', expected one of [auto, cpu, cuda]
2|checkpoint_every=0|rlhf-bench: error: checkpoint_every must be in (0, 1] (a fraction of the budget), got 0.0
2|eval.batch_size=0|rlhf-bench: error: eval.batch_size must be >= 1, got 0
2|task=arithmetic task.digits=1|rlhf-bench: error: task arithmetic has fewer than
2|sft.steps=0|rlhf-bench: error: sft.steps=0 uses the pretrained model as the SFT model, but model=small starts from random weights
2|algo=rloo algo.group_size=1|rlhf-bench: error: algo.group_size must be >= 2 (the baseline is the other completions' mean), got 1
2|algo=reinforce_pp algo.group_size=3|rlhf-bench: error: algo.batch_size 64 is not a multiple of algo.group_size 3
2|task=positive_sentiment|rlhf-bench: error: task positive_sentiment is real text: it needs a pretrained model
2|task=hh_rlhf model=smollm2|rlhf-bench: error: task hh_rlhf has no gold judge: set task.gold_model=
CASES
)
printf '| arguments | status (expected) | first line |\n|---|---|---|\n'
while IFS='|' read -r want args _; do
  # shellcheck disable=SC2086
  out=$(rlhf-bench $args hydra.sweep.dir=/tmp/rlhf-bench-bad-input 2>&1 >/dev/null)
  status=$?
  printf '| `%s` | %s (%s) | %s |\n' "$args" "$status" "$want" "$(printf '%s\n' "$out" | grep -v '^$' | head -n 1)"
done <<< "$cases"
