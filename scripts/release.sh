#!/usr/bin/env bash
# One release: every published number regenerated at one commit, into results/.
#
#   bash scripts/release.sh [key=value ...]      the overrides go to every run (none for the published release)
#
# Parts, each a plain command a user can also run alone:
#   1. tune      per built-in task, rlhf-bench-tune (18 Optuna trials per algorithm on sentiment, 30 on arithmetic, on a stage
#                seed of its own, then the best configuration and the defaults on fresh seeds), writing each
#                algorithm's best settings to $RELEASE_CONF/tuned/<model>/<task>/<algo>.yaml
#   2. default   the default comparison (a plain `rlhf-bench`: PPO, GRPO, DPO at those tuned settings) on both
#                built-in tasks: first its pilot, its runs on the tuning finals' stage seeds (trainer seed 0 beside
#                the finals' 1), from which scripts/power.py chooses the stage and trainer seeds that detect a
#                difference of 0.05 at 80 % power; they must be conf/config.yaml's (exit 3 where not); then all of them
#   3. six       RLOO, REINFORCE++ and best-of-N on the same tasks and seeds (with part 2: the six-way comparison)
#   4. smollm2   the real-model verdict ($RELEASE_REAL: experiment=smollm2_cpu, SmolLM2-135M with LoRA in bf16):
#                PPO, GRPO, DPO, RLOO each tuned by a short search ($RELEASE_TUNE_REAL, in part 1), their final
#                runs on stage seeds $RELEASE_REAL_STAGE_SEEDS, and best-of-N on the same seeds; then one of them
#                ($RELEASE_REAL_PRECISION_ALGO, GRPO) again in float32 on the same seeds: bf16's change at full size
# then the tables and plots of each into $RELEASE_OUT (results/): tuned/<task>/, default/, six/, smollm2/, power/, and
# $RELEASE_OUT/README.md with the commit, the library versions, the wall time and how many parts it took; last,
# the README's headline section from them (bench/results/headline.py).
#
# Where part 1 writes tuned settings that differ from the committed ones, the release stops (exit 3): commit
# them, then run the same command again; the same where the pilot's design is not conf/config.yaml's seeds.
# Stopped (Ctrl-C, a killed session) and started again with the same command, it reuses every finished run
# by its identity and resumes the killed ones from their checkpoints: a release may take several sessions.
# Every part must run on the machine kind of the first (exit 4 where not: scripts/machine_check.py).
# Environment: RELEASE_RUNS (where the runs go, results/runs), RELEASE_OUT (results), RELEASE_CONF (conf:
# the checkout's; elsewhere, the comparisons read it through hydra.searchpath), RELEASE_TUNE (tune.* settings),
# RELEASE_SEEDS (seed overrides of parts 2 and 3; empty: the default comparison's own), RELEASE_REAL, RELEASE_TUNE_REAL,
# RELEASE_REAL_STAGE_SEEDS, RELEASE_REAL_PRECISION_ALGO (part 4's setting, search, stage seeds, float32 rerun).
# Every step is `python -m` from the checkout's root, so the release runs this checkout's code (a worktree
# pinned at the release commit keeps releasing while another checkout changes bench/).
set -euo pipefail
cd "$(dirname "$0")/.."
# scripts/*.py import bench: this checkout's, not the one an editable install points at (another worktree)
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
out=${RELEASE_OUT:-results}
# the runs themselves are part of the release (results/runs: summary, config, metrics, samples of each; not
# checkpoints or wandb files, .gitignore): committed between parts, a later session resumes from them
runs=${RELEASE_RUNS:-$out/runs}
conf=${RELEASE_CONF:-conf}
# the finals on 5 stage seeds × trainer seed 1: with the default comparison's trainer seed 0 on the same stage seeds,
# the pilot of its seeds (scripts/power.py; a variance from 3 is a guess)
read -r -a tune <<< "${RELEASE_TUNE:-tune.seeds=1 tune.stage_seeds=[0,1,2,3,4] tune.algos=[ppo,grpo,dpo,rloo,reinforce_pp]}"
# trials per task, the same for every algorithm of a task, 6 more until each of its searches has levelled off
# (its last third raised its best by under 0.01, bench/results/tuning.py), and at most 30 (2.5× the protocol's
# 12): at 12, DPO's sentiment search rose 0.014; on arithmetic, PPO's rose 0.016 at 18, GRPO's 0.015 at 24, and at
# 30 both still rose (PPO 0.062, GRPO 0.015: results/tuned/arithmetic/README.md says so). The first trials are
# reused: the seeded sampler proposes them again. RELEASE_TUNE's own tune.trials, where it has one, wins (it comes later).
declare -A trials=([sentiment]=18 [arithmetic]=30)
read -r -a seeds <<< "${RELEASE_SEEDS:-}"
# the pilot's stage seeds are the tuning finals' (RELEASE_TUNE's tune.stage_seeds)
pilot=$(printf '%s\n' "${tune[@]}" | sed -n 's/^tune\.stage_seeds=\[\(.*\)\]$/\1/p' | tail -n 1)
[ -n "$pilot" ] || { echo "release: RELEASE_TUNE must name tune.stage_seeds=[...] (the seeds' pilot runs on them)" >&2; exit 2; }
# the verdict on the real model: a short search per algorithm (6 trials, TPE's random start, in each algorithm's
# space, conf/tune/<algo>.yaml), then the best configuration on 3 stage seeds; no default rows (the untuned
# rates of a pretrained model do not move it), best-of-N needs no search
read -r -a real <<< "${RELEASE_REAL:-experiment=smollm2_cpu}"
real_stage_seeds=${RELEASE_REAL_STAGE_SEEDS:-0,1,2}
real_precision_algo=${RELEASE_REAL_PRECISION_ALGO:-grpo}
read -r -a tune_real <<< "${RELEASE_TUNE_REAL:-tune.trials=6 tune.seeds=1 tune.defaults=false tune.algos=[ppo,grpo,dpo,rloo]}"
# best-of-N and the float32 rerun run on the finals' seeds: trainer seed 1 (tune.seeds=1) on those stage seeds
case " ${tune_real[*]} " in
  *" tune.seeds=1 "*) ;;
  *) echo "release: RELEASE_TUNE_REAL must keep tune.seeds=1 (part 4 pairs best-of-N and float32 with trainer seed 1)" >&2; exit 2 ;;
esac
case " ${tune_real[*]} " in
  *"tune.algos=["*"$real_precision_algo"*) ;;
  *) echo "release: RELEASE_REAL_PRECISION_ALGO=$real_precision_algo is not one of RELEASE_TUNE_REAL's tune.algos" >&2; exit 2 ;;
esac
dirty() { [ -n "$(git status --porcelain -- "$@")" ] && [ -z "${RELEASE_ALLOW_DIRTY:-}" ]; }
if dirty bench conf pyproject.toml; then
  echo "release: bench/, conf/ or pyproject.toml differ from the commit; a release is one commit's numbers: commit first" >&2
  exit 2
fi
searchpath=()
if ! [ "$conf" -ef conf ]; then
  # tuned settings outside the checkout are no release's (the tests' case); the checkout's own conf/tuned files
  # come first on Hydra's search path, so this is only for a checkout that has none for the model
  [ -n "${RELEASE_ALLOW_DIRTY:-}" ] || { echo "release: RELEASE_CONF=$conf is not the checkout's conf: no release" >&2; exit 2; }
  searchpath=("hydra.searchpath=[file://$(realpath "$conf")]")
fi
if [ -e "$out/.git" ] || [ "$(realpath "$out")" = "$(realpath .)" ]; then
  echo "release: RELEASE_OUT=$out would hold the checkout; the release replaces everything in it" >&2
  exit 2
fi
# a release is one machine kind's bits: each part rebuilds the stages it needs, and runs paired by stage seed must
# read the same weights, which CPUs of other kinds do not compute (scripts/machine_check.py: exit 4, no part counted)
python scripts/machine_check.py "$runs" --rebuild || exit $?
# each phase, then the stage contents its runs read against the earlier runs' (exit 4 at that phase, not at the end)
phase() { "$@" || return; python scripts/machine_check.py "$runs" > /dev/null; }
commit=$(git rev-parse HEAD)
mkdir -p "$runs"
parts=$(( $(cat "$runs/parts" 2>/dev/null || echo 0) + 1 ))
echo "$parts" > "$runs/parts"
start=$(date +%s)
spent=$(cat "$runs/wall_s" 2>/dev/null || echo 0)
trap 'echo $(( spent + $(date +%s) - start )) > "$runs/wall_s"' EXIT

for task in sentiment arithmetic; do
  phase python -m bench.tune "task=$task" "tune.trials=${trials[$task]}" "${tune[@]}" "tune.dir=$runs/tune/$task" "tune.conf_dir=$conf" "$@"
done
phase python -m bench.tune "${real[@]}" "${tune_real[@]}" "tune.stage_seeds=[$real_stage_seeds]" "tune.dir=$runs/tune/smollm2" \
  "tune.conf_dir=$conf" "$@"
if dirty conf/tuned; then
  echo "release: the tuning protocol wrote new tuned settings (git status conf/tuned): commit them, then run the same command again" >&2
  exit 3
fi
# the pilot: the default comparison's own runs on the finals' stage seeds (reused by it below); RELEASE_SEEDS (the
# tests') sets the seeds instead of the design
phase python -m bench.app task=sentiment,arithmetic "stage_seed=$pilot" seed=0 "${searchpath[@]}" "hydra.sweep.dir=$runs/default" "$@"
power=(python scripts/power.py "$runs/tune/sentiment" "$runs/tune/arithmetic" "$runs/default" "--stage-seeds=$pilot" --config conf/config.yaml)
check=()
[ ${#seeds[@]} -gt 0 ] || check=(--check)
"${power[@]}" "${check[@]}" || exit $?
phase python -m bench.app task=sentiment,arithmetic "${seeds[@]}" "${searchpath[@]}" "hydra.sweep.dir=$runs/default" "$@"
phase python -m bench.app algo=rloo,reinforce_pp,best_of_n task=sentiment,arithmetic "${seeds[@]}" "${searchpath[@]}" "hydra.sweep.dir=$runs/six" "$@"
# the protocol's final runs are the verdict's (seeds 1..K on stages the search never saw): best-of-N joins them
phase python -m bench.app "${real[@]}" algo=best_of_n "stage_seed=$real_stage_seeds" seed=1 "${searchpath[@]}" \
  "hydra.sweep.dir=$runs/smollm2_best_of_n" "$@"
# the same final runs of one algorithm in float32 (its tuned settings, the same seeds): bf16's change against the
# stage seeds' spread, paired, at the real model's size (tests/test_precision.py checks it at the tiny one)
phase python -m bench.app "${real[@]}" "algo=$real_precision_algo" precision=fp32 "stage_seed=$real_stage_seeds" seed=1 "${searchpath[@]}" \
  "hydra.sweep.dir=$runs/smollm2_fp32" "$@"

rm -rf "$out/tuned" "$out/default" "$out/six" "$out/smollm2" "$out/power"
# with its design where the seeds were the design's (checked), the headline's; RELEASE_SEEDS' are not
"${power[@]}" "${check[@]}" --out "$out/power" > /dev/null
for task in sentiment arithmetic smollm2; do
  python -m bench.results "$runs/tune/$task" --out "$out/tuned/$task"
done
python -m bench.results "$runs/default" --out "$out/default"
python -m bench.results "$runs/default" "$runs/six" --out "$out/six"
python -m bench.results "$runs/tune/smollm2/final" "$runs/smollm2_best_of_n" --out "$out/smollm2"
python -m bench.results "$runs/tune/smollm2/final/$real_precision_algo" "$runs/smollm2_fp32" --out "$out/smollm2/precision"
python -m bench.results.release "$out" --commit "$commit" --runs "$runs" --parts "$parts" \
  --wall-s $(( spent + $(date +%s) - start )) --command "bash scripts/release.sh $*"
find "$out" -mindepth 1 -maxdepth 1 ! -name tuned ! -name default ! -name six ! -name smollm2 ! -name power ! -name runs ! -name README.md ! -name release.json -exec rm -rf {} +
# the README's headline section, from these result sets (RELEASE_README: another README, the tests')
python -m bench.results.headline "$out" --readme "${RELEASE_README:-README.md}"
