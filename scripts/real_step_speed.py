"""Where a step's time goes on the real model (SmolLM2-135M-Instruct, `experiment=smollm2_sentiment` scaled to a
CPU), and what each speed lever gives, as ratios to the float32 step measured in the same run.

    python scripts/real_step_speed.py [--algos ppo grpo dpo] [--steps 3] [--levers fp32 bf16 lora lora_bf16]

Builds each algorithm's run as `rlhf-bench` does (cached stages, the experiment's own settings, batch shapes cut
to `SCALE` so a step takes seconds here), once per lever, then takes `--steps` steps of every lever in turn
(one step of each, then the next round), so a noisy machine slows each lever alike. The levers:

    fp32        precision=fp32: the step as it was (float32 everywhere)
    bf16        precision=bf16: bf16 autocast for sampling, scoring and the update; the weights, the optimiser
                state and every loss stay float32 (bench/runner/build.py `autocast`)
    lora        model.lora.rank=16: adapters on every linear layer, the frozen base shared with the reference
    lora_bf16   both

Per lever: the median step, its phases (rollout, scoring, update) as means, and the models' memory (parameters,
gradients and optimiser state of every model the step runs). Levers measured and not taken (the figures are in
docs/real-settings.md): a static KV cache, and `torch.compile` of the decode step with it.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from bench.app import CONF_DIR
from bench.config import to_object
from bench.runner.build import build

SCALE = {
    # the experiment's prompts and pairs, fewer of them: the stages build in minutes on a CPU
    "common": ["task.n_train=256", "task.n_eval=32", "task.n_val=16", "prefs.n_pairs=256", "rm.batch_size=8", "logger.wandb_mode=disabled"],
    # a step's shape: 16 rollouts (PPO), 4 prompts × 4 (GRPO), 8 pairs (DPO), completions of up to 48 tokens
    "ppo": ["algo.batch_size=16", "algo.epochs=1"],
    "grpo": ["algo.prompts_per_step=4", "algo.group_size=4"],
    "dpo": ["algo.batch_size=8"],
}
LEVERS = {
    "fp32": ["precision=fp32"],
    "bf16": ["precision=bf16"],
    "lora": ["precision=fp32", "model.lora.rank=16", "model.lora.alpha=32"],
    "lora_bf16": ["precision=bf16", "model.lora.rank=16", "model.lora.alpha=32"],
}
MIB = 2**20


def built_run(algo: str, lever: str, cache_dir: str, extra: list[str] = ()):
    overrides = ["experiment=smollm2_sentiment", f"algo={algo}", f"cache_dir={cache_dir}", *SCALE["common"], *SCALE[algo], *LEVERS[lever], *extra]
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    return build(to_object(cfg), Path(tempfile.mkdtemp()), OmegaConf.to_container(cfg, resolve=True), None, {"group": ""}, None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algos", nargs="+", default=["ppo", "grpo", "dpo"])
    parser.add_argument("--levers", nargs="+", default=list(LEVERS), choices=list(LEVERS))
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--cache-dir", default=".cache/rlhf-bench")
    args = parser.parse_args()
    print(f"SmolLM2-135M-Instruct, experiment=smollm2_sentiment scaled ({' '.join(SCALE['common'][:4])}), torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, {args.steps} steps of each lever, interleaved, after one warm-up step")  # fmt: skip
    for algo in args.algos:
        runs = {lever: built_run(algo, lever, args.cache_dir) for lever in args.levers}
        seconds: dict[str, list[float]] = {lever: [] for lever in runs}
        for round_ in range(args.steps + 1):
            for lever, b in runs.items():
                with b.precision():
                    start = time.perf_counter()
                    b.trainer.step()
                    if round_:  # the first round warms up (allocator, one-time casts)
                        seconds[lever].append(time.perf_counter() - start)
                    else:
                        b.phases.pop()
        print(f"\n{algo} ({' '.join(SCALE[algo])}): median step, phases (means), models' memory")
        base = statistics.median(seconds[args.levers[0]])
        for lever, b in runs.items():
            step = statistics.median(seconds[lever])
            phases = {k.rsplit("/", 1)[-1]: v / args.steps for k, v in b.phases.pop().items() if k.startswith("perf/phase_s/")}
            models = sum(v for k, v in b.trainer.memory().items() if k.endswith("_bytes")) / MIB
            split = ", ".join(f"{k} {v:.2f}" for k, v in phases.items())
            print(f"  {lever:10s} {step:7.2f} s  {base / step:4.2f}x   [{split}]   models {models:6.0f} MiB")
        del runs


if __name__ == "__main__":
    main()
