"""RLOO (Ahmadian et al. 2024, "Back to Basics"): REINFORCE with a leave-one-out baseline, no critic.

Three models: the policy (trained); the reference and the reward model (or the task's
verifiable reward) frozen. Each step samples k completions for each of B prompts and
rewards each completion as a whole, the KL to the reference inside the reward:

    r_i = score_i - β Σ_t (log π_old(c_t) - log π_ref(c_t))        (the paper's and TRL's choice)
    A_i = r_i - 1/(k-1) Σ_{j≠i} r_j                                 (`rloo_advantages`)

then minimises the clipped surrogate on the sequence-level ratio
ρ_i = exp(Σ_t log π(c_t) - Σ_t log π_old(c_t)), averaged over the sequences. The
completion is one action: the paper's point is that a bandit over whole completions
needs neither a critic nor per-token credit.

Each rollout is split into `minibatches` (whole groups each), one optimiser step each, for
`inner_iterations` passes, as in GRPO; from the second optimiser step on a rollout the ratio
moves away from 1 and the clip acts.

Departures from the paper:
  1. The clipped ratio (TRL's RLOOTrainer) rather than the paper's plain REINFORCE: with one
     minibatch and one pass the ratio is 1 and the two are the same update.
  2. `whiten_advantages` (TRL's `normalize_advantages`, off by default) is optional.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from bench.algos import Context, PolicyTrainer, register_algo, train_metrics
from bench.config import ConfigError
from bench.losses import clip_fraction, clipped_surrogate, masked_mean, rloo_advantages, whiten
from bench.optim import clip_and_step
from bench.rollout import token_logprobs


@dataclass
class RLOOConfig:
    name: str = "rloo"
    group_size: int = 4
    """k: completions per prompt (paper: 2 and 4, k = 4 best). At least 2: the baseline is the others' mean."""
    prompts_per_step: int = 16
    """B: prompts per step; the policy sees B·k completions per step (GRPO's defaults: the same samples)."""
    beta: float = 0.05
    """β: weight of the sequence-level KL inside the reward (TRL: 0.05)."""
    eps: float = 0.2
    """ε: clip of the sequence-level ratio (TRL: 0.2)."""
    whiten_advantages: bool = False
    """Whiten the advantages over the batch (TRL's normalize_advantages; the paper does not)."""
    minibatches: int = 2
    """Optimiser steps per pass over a rollout, each on whole groups (as GRPO's)."""
    inner_iterations: int = 1
    """Passes over each rollout (paper: 1)."""
    temperature: float = 1.0
    """Sampling temperature of the rollouts."""
    lr: float = 5e-5
    """AdamW learning rate (GRPO's default: the same critic-free update size)."""
    max_grad_norm: float = 1.0

    def __post_init__(self) -> None:
        if self.group_size < 2:
            raise ConfigError(f"algo.group_size must be >= 2 (the baseline is the other completions' mean), got {self.group_size}")
        if self.minibatches < 1 or self.inner_iterations < 1:
            raise ConfigError(f"algo.minibatches and algo.inner_iterations must be >= 1, got {self.minibatches}, {self.inner_iterations}")
        if self.prompts_per_step % self.minibatches:
            raise ConfigError(f"algo.prompts_per_step {self.prompts_per_step} is not divisible by algo.minibatches {self.minibatches}")


class RLOO(PolicyTrainer):
    def __init__(self, cfg: RLOOConfig, ctx: Context):
        super().__init__(ctx, cfg.lr, len(ctx.train_prompts), reference=True, rewarded=True)
        self.cfg = cfg

    def step(self) -> dict[str, float]:
        cfg, ctx = self.cfg, self.ctx

        # 1. Rollout: k completions per prompt, groups in consecutive rows.
        with ctx.phases("rollout"):
            batch = self.sample_groups(cfg.prompts_per_step, cfg.group_size, cfg.temperature)
            mask = batch.completion_mask  # [B*k, C]

        # 2. Sequence rewards with the KL inside, leave-one-out advantages.
        with ctx.phases("scoring"):
            with torch.no_grad():
                logp_old = token_logprobs(self.policy, batch, cfg.temperature)  # [B*k, C]
                logp_ref = token_logprobs(ctx.reference, batch, cfg.temperature)  # [B*k, C]
            scores = ctx.rewards(batch).float()  # [B*k]
            kl = ((logp_old - logp_ref) * mask).sum(-1)  # [B*k]
            advantages = rloo_advantages(scores - cfg.beta * kl, cfg.group_size)  # [B*k]
            if cfg.whiten_advantages:
                advantages = whiten(advantages, torch.ones_like(advantages))
            seq_old = (logp_old * mask).sum(-1)  # [B*k]

        # 3. Clipped surrogate on the sequence ratio, minibatches of whole groups.
        rows = len(batch) // cfg.minibatches
        stats: dict[str, list[torch.Tensor]] = {k: [] for k in ("loss", "entropy", "clip_frac", "grad_norm")}
        with ctx.phases("update"):
            for _ in range(cfg.inner_iterations):
                for start in range(0, len(batch), rows):
                    idx = torch.arange(start, start + rows, device=ctx.device)
                    mb, m, adv = batch.select(idx), mask[idx], advantages[idx]
                    logp, entropy = token_logprobs(self.policy, mb, cfg.temperature, with_entropy=True)  # [b, C]
                    # one action per completion: log ρ = Σ_t log π - Σ_t log π_old, [b, 1]. A whole completion's
                    # log-ratio can overflow exp(); beyond ±20 the ratio is far outside the clip range anyway
                    log_ratio = ((logp * m).sum(-1, keepdim=True) - seq_old[idx, None]).clamp(-20.0, 20.0)
                    zero = torch.zeros_like(log_ratio)
                    loss = clipped_surrogate(log_ratio, zero, adv, cfg.eps, cfg.eps).mean()
                    loss.backward()
                    stats["grad_norm"].append(clip_and_step(self.policy, self.optimizer, cfg.max_grad_norm))
                    ctx.meter.steps += 1
                    stats["loss"].append(loss.detach())
                    stats["entropy"].append(masked_mean(entropy.detach(), m))
                    stats["clip_frac"].append(clip_fraction(log_ratio.detach(), zero, adv, torch.ones_like(zero), cfg.eps, cfg.eps))
        ctx.meter.samples += len(batch)

        # 4. Metrics, one host sync.
        summary = {k: torch.stack(v).mean() for k, v in stats.items()} | {
            "reward": scores.mean(),
            "reward_std": scores.std(),
            "kl": kl.mean(),
            "advantages/mean": advantages.mean(),
            "advantages/std": advantages.std(),
            "completion_length": mask.sum(-1).mean(),
        }
        return train_metrics(summary, self.optimizer)


register_algo("rloo", RLOOConfig, RLOO)
