"""Our GRPO and DPO steps against TRL's `GRPOTrainer` and `DPOTrainer` on the same SmolLM2 workload, alternately
in one run, as ratios (TRL's step time / ours).

    pip install trl==1.16.0          # a bench extra, not a dependency: pip install -e '.[vs-trl]'
    python scripts/vs_trl.py [--algos grpo dpo] [--steps 3] [--levers fp32 lora_bf16]

The workload is scripts/real_step_speed.py's (`experiment=smollm2_sentiment` cut to `SCALE`), with one optimiser
step per rollout on both sides (ours `algo.minibatches=1`, TRL's `steps_per_generation=1`, one iteration):

    GRPO  4 prompts × 4 completions of up to 48 tokens (temperature 1, no top-k/top-p), scored by the run's
          reward model (a callable that runs the same model on the same texts), β and the learning rate of the
          run, the reference's log-probs every step, clipped surrogate, AdamW
    DPO   8 of the run's preference pairs a step, the reference's log-probs of every pair computed once before
          the first step on both sides (TRL's `precompute_ref_log_probs`), β and the learning rate of the run

Both start from the run's SFT model (the cached stage: the same weights), dropout off, and for a `lora*` lever
use the same adapters (rank 16, alpha 32, every linear layer but the head) through `peft`: TRL as a
`peft_config` (its reference is the model with the adapters disabled), ours `model.lora.*`. Precision: TRL's
`bf16=True` on the CPU is autocast to bf16 with float32 weights, as ours is; TRL's default gradient checkpointing
is off, as ours is (`model.gradient_checkpointing`), so neither recomputes activations. TRL's step is timed from its
`on_step_begin` to `on_step_end` callbacks (generation, scoring, loss, backward, optimiser); at each
`on_step_end` one of our steps runs and is timed alike, so the two alternate and a noisy machine slows both.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import datasets
import torch
from peft import LoraConfig
from transformers import TrainerCallback
from trl import DPOConfig, DPOTrainer, GRPOConfig, GRPOTrainer

from bench.models import load_policy
from bench.rollout import make_batch, reward_scores
from real_step_speed import LEVERS, SCALE, built_run  # scripts/, next to this one

OURS = {"grpo": ["algo.minibatches=1", "algo.inner_iterations=1"], "dpo": []}
"""Our settings that make one step one optimiser step on one rollout, as TRL's is."""


class Alternate(TrainerCallback):
    """Times each TRL step, then takes and times one of ours; the first `warmup` of each are left out."""

    def __init__(self, ours, warmup: int):
        self.ours, self.warmup = ours, warmup
        self.trl_s: list[float] = []
        self.ours_s: list[float] = []

    def on_step_begin(self, args, state, control, **kwargs):
        self.started = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.trl_s.append(time.perf_counter() - self.started)
        with self.ours.precision():
            start = time.perf_counter()
            self.ours.trainer.step()
            self.ours_s.append(time.perf_counter() - start)

    def medians(self) -> tuple[float, float]:
        return statistics.median(self.trl_s[self.warmup :]), statistics.median(self.ours_s[self.warmup :])


def trl_args(config_cls, lever: str, steps: int, **kwargs):
    return config_cls(
        output_dir=tempfile.mkdtemp(), max_steps=steps, report_to="none", save_strategy="no", logging_steps=10**6, use_cpu=True,
        bf16="bf16" in lever, gradient_checkpointing=False, disable_dropout=True, gradient_accumulation_steps=1, dataloader_num_workers=0, seed=0, **kwargs,
    )  # fmt: skip


def peft_config(lever: str):
    return LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear") if "lora" in lever else None


def trl_grpo(ours, lever: str, steps: int):
    ctx, cfg = ours.trainer.ctx, ours.cfg

    def reward_model(prompts, completions, **_):
        batch = make_batch(ctx.tokenizer, prompts, completions, ctx.device)
        with torch.no_grad(), ours.precision():  # as our trainer scores (TRL calls reward functions outside autocast)
            return reward_scores(ctx.reward_model, batch, ctx.tokenizer.eos_token_id).float().tolist()

    args = trl_args(GRPOConfig, lever, steps, per_device_train_batch_size=cfg.algo.prompts_per_step * cfg.algo.group_size,
                    num_generations=cfg.algo.group_size, steps_per_generation=1, num_iterations=1,
                    max_completion_length=cfg.task.max_new_tokens, temperature=1.0, top_k=0, top_p=1.0, beta=cfg.algo.beta,
                    learning_rate=cfg.algo.lr, max_grad_norm=cfg.algo.max_grad_norm, lr_scheduler_type="constant",
                    weight_decay=0.0)  # fmt: skip
    prompts = datasets.Dataset.from_dict({"prompt": list(ctx.train_prompts)})  # already through the chat template
    return GRPOTrainer(model=load_policy(ctx.stages.sft), reward_funcs=reward_model, args=args, train_dataset=prompts,
                       processing_class=ctx.tokenizer, peft_config=peft_config(lever))  # fmt: skip


def trl_dpo(ours, lever: str, steps: int):
    ctx, cfg = ours.trainer.ctx, ours.cfg
    # in memory: a `map` over a data set read from the stage cache writes its cache files into the stage's
    # directory, which the cache then finds corrupt (unexpected files) and rebuilds
    pairs = datasets.load_from_disk(str(ctx.stages.pairs), keep_in_memory=True).select_columns(["prompt", "chosen", "rejected"])
    eos = ctx.tokenizer.eos_token
    pairs = pairs.map(lambda r: {"chosen": r["chosen"] + eos, "rejected": r["rejected"] + eos}, keep_in_memory=True)  # ours closes each with EOS
    args = trl_args(DPOConfig, lever, steps, per_device_train_batch_size=cfg.algo.batch_size, beta=cfg.algo.beta,
                    learning_rate=cfg.algo.lr, max_grad_norm=cfg.algo.max_grad_norm, lr_scheduler_type="constant",
                    weight_decay=0.0, precompute_ref_log_probs=True, max_length=None)  # fmt: skip
    return DPOTrainer(model=load_policy(ctx.stages.sft), args=args, train_dataset=pairs, processing_class=ctx.tokenizer,
                      peft_config=peft_config(lever))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algos", nargs="+", default=["grpo", "dpo"], choices=["grpo", "dpo"])
    parser.add_argument("--levers", nargs="+", default=["fp32", "lora_bf16"], choices=list(LEVERS))
    parser.add_argument("--steps", type=int, default=3, help="timed steps of each, after one warm-up step")
    parser.add_argument("--cache-dir", default=".cache/rlhf-bench")
    args = parser.parse_args()
    print(f"SmolLM2-135M-Instruct, torch {torch.__version__}, {torch.get_num_threads()} threads; TRL vs ours, alternating, "
          f"{args.steps} steps each after one warm-up; ratio = TRL / ours (> 1: ours faster)")  # fmt: skip
    for algo in args.algos:
        for lever in args.levers:
            ours = built_run(algo, lever, args.cache_dir, extra=OURS[algo])
            trainer = (trl_grpo if algo == "grpo" else trl_dpo)(ours, lever, args.steps + 1)
            timer = Alternate(ours, warmup=1)
            trainer.add_callback(timer)
            trainer.train()
            trl_s, ours_s = timer.medians()
            print(f"  {algo:5s} {lever:10s} ({' '.join(SCALE[algo] + OURS[algo])}): TRL {trl_s:6.2f} s, ours {ours_s:6.2f} s, "
                  f"ratio {trl_s / ours_s:4.2f}x")  # fmt: skip
            del trainer, ours


if __name__ == "__main__":
    main()
