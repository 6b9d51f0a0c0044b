"""GRPO (Shao et al. 2024, DeepSeekMath): group-relative advantages, no critic.

Three models: the policy (trained); the reference and the reward model (or the task's
verifiable reward) frozen. Each step samples G completions for each of B prompts,
scores them, and gives every token of completion i the advantage

    A_i = (r_i - mean(r_group)) / (std(r_group) + eps)          (scale=group)

then minimises the clipped surrogate plus β·k3 KL to the reference, aggregated as
`loss_agg` says. Options from the papers that followed:
  - scale=batch (std over the batch) or none (Dr. GRPO, Liu et al. 2025: no std);
  - loss_agg=token_mean (DAPO, Yu et al. 2025) or constant (Dr. GRPO: sum / (B·G·max_len));
  - eps_high > eps_low (DAPO's clip-higher);
  - beta=0 drops the KL term and with it the reference forward pass (DAPO, Dr. GRPO).

Each rollout is split into `minibatches` (whole groups each, TRL's `steps_per_generation`),
one optimiser step each, for μ (`inner_iterations`) passes. From the second optimiser
step on a rollout the ratio π/π_old moves away from 1 and the clip (ε_low, ε_high) acts;
with one minibatch and μ = 1 the ratio is always 1, the clip is inert, and `logp_old` is
the detached current log-prob (no extra forward pass). The step's `train/*` values are
means over its optimiser steps (`train/kl` of the later ones after the earlier updates).

Departures from the paper:
  1. The KL term is added per token before aggregation, as in the paper's objective.
  2. Minibatches hold whole groups, so each group's advantages are used together.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import torch

from bench.algos import Context, PolicyTrainer, register_algo, train_metrics
from bench.config import ConfigError
from bench.losses import aggregate, clip_fraction, clipped_surrogate, group_advantages, kl_k3, masked_mean
from bench.optim import clip_and_step
from bench.rollout import token_logprobs


class AdvantageScale(str, enum.Enum):
    group = "group"
    batch = "batch"
    none = "none"


class LossAggregation(str, enum.Enum):
    seq_mean = "seq_mean"
    token_mean = "token_mean"
    constant = "constant"


@dataclass
class GRPOConfig:
    name: str = "grpo"
    group_size: int = 4
    """G: completions per prompt (paper: 64; DAPO: 16). At least 2: the baseline is the group mean.
    Here G·B is fixed by the budget, and more prompts per step generalise better on a small model."""
    prompts_per_step: int = 16
    """B: prompts per step; the policy sees B·G completions per step."""
    scale: AdvantageScale = AdvantageScale.group
    """Advantage denominator: group std (GRPO), batch std, or none (Dr. GRPO)."""
    loss_agg: LossAggregation = LossAggregation.seq_mean
    """seq_mean (GRPO), token_mean (DAPO), constant (Dr. GRPO: divides by B·G·max_new_tokens)."""
    eps_low: float = 0.2
    """ε_low: ratio floor 1 - ε_low (paper: 0.2)."""
    eps_high: float = 0.2
    """ε_high: ratio ceiling 1 + ε_high (paper: 0.2; DAPO clip-higher: 0.28)."""
    beta: float = 0.04
    """β: weight of the k3 KL to the reference (paper: 0.04). 0 skips the reference forward pass."""
    minibatches: int = 2
    """Optimiser steps per pass over a rollout, each on B/minibatches prompts' groups (TRL's
    `steps_per_generation`). 1 makes the ratio always 1 and the clip inert (with μ = 1)."""
    inner_iterations: int = 1
    """μ: passes over each rollout (paper: 1)."""
    temperature: float = 1.0
    """Sampling temperature of the rollouts."""
    adv_eps: float = 1e-4
    """eps in the advantage denominator."""
    lr: float = 5e-5
    """AdamW learning rate (paper: 1e-6 on a 7B model). 1e-4 and above broke the arithmetic
    circuit of the small preset within a few steps; 5e-5 learns."""
    max_grad_norm: float = 1.0

    def __post_init__(self) -> None:
        if self.group_size < 2:
            raise ConfigError(f"algo.group_size must be >= 2 (the baseline is the group mean), got {self.group_size}")
        if self.inner_iterations < 1:
            raise ConfigError(f"algo.inner_iterations must be >= 1, got {self.inner_iterations}")
        if self.minibatches < 1:
            raise ConfigError(f"algo.minibatches must be >= 1, got {self.minibatches}")
        if self.prompts_per_step % self.minibatches:
            raise ConfigError(f"algo.prompts_per_step {self.prompts_per_step} is not divisible by algo.minibatches {self.minibatches}")


class GRPO(PolicyTrainer):
    def __init__(self, cfg: GRPOConfig, ctx: Context):
        super().__init__(ctx, cfg.lr, len(ctx.train_prompts), reference=cfg.beta > 0, rewarded=True)
        self.cfg = cfg
        self.max_len = ctx.task.cfg.max_new_tokens

    def step(self) -> dict[str, float]:
        cfg, ctx = self.cfg, self.ctx
        G = cfg.group_size

        # 1. Rollout: G completions per prompt, groups in consecutive rows (group_advantages' layout).
        with ctx.phases("rollout"):
            batch = self.sample_groups(cfg.prompts_per_step, G, cfg.temperature)
            mask = batch.completion_mask  # [B*G, C]

        # 2. Rewards, group advantages, reference log-probs; old log-probs only when the rollout gets
        #    several optimiser steps (with one, π_old is the detached π of that step: no extra forward).
        with ctx.phases("scoring"):
            rewards = ctx.rewards(batch).float()  # [B*G]
            advantages = group_advantages(rewards, G, cfg.scale.value, cfg.adv_eps)  # [B*G]
            with torch.no_grad():
                logp_ref = token_logprobs(ctx.reference, batch, cfg.temperature) if cfg.beta > 0 else None  # [B*G, C]
                several = cfg.inner_iterations * cfg.minibatches > 1
                logp_old = token_logprobs(self.policy, batch, cfg.temperature) if several else None  # [B*G, C]

        # 3. μ passes of `minibatches` optimiser steps: clipped surrogate + β·KL, aggregated per `loss_agg`.
        rows = len(batch) // cfg.minibatches
        stats: dict[str, list[torch.Tensor]] = {k: [] for k in ("loss", "entropy", "clip_frac", "grad_norm", "kl")}
        with ctx.phases("update"):
            for _ in range(cfg.inner_iterations):
                for start in range(0, len(batch), rows):
                    idx = torch.arange(start, start + rows, device=ctx.device)  # whole groups: rows is a multiple of G
                    mb, m, adv = batch.select(idx), mask[idx], advantages[idx]
                    logp, entropy = token_logprobs(self.policy, mb, cfg.temperature, with_entropy=True)  # [b, C]
                    old = logp_old[idx] if logp_old is not None else logp.detach()
                    per_token = clipped_surrogate(logp, old, adv, cfg.eps_low, cfg.eps_high)  # [b, C]
                    if logp_ref is not None:
                        per_token = per_token + cfg.beta * kl_k3(logp, logp_ref[idx])
                    loss = aggregate(per_token, m, cfg.loss_agg.value, max_len=self.max_len)
                    loss.backward()
                    stats["grad_norm"].append(clip_and_step(self.policy, self.optimizer, cfg.max_grad_norm))
                    ctx.meter.steps += 1
                    stats["loss"].append(loss.detach())
                    stats["entropy"].append(masked_mean(entropy.detach(), m))
                    stats["clip_frac"].append(clip_fraction(logp.detach(), old, adv, m, cfg.eps_low, cfg.eps_high))
                    if logp_ref is not None:
                        stats["kl"].append(((logp.detach() - logp_ref[idx]) * m).sum(-1).mean())
        ctx.meter.samples += len(batch)

        # 4. Metrics, one host sync.
        group_std = rewards.view(-1, G).std(-1)  # [B]
        summary = {k: torch.stack(v).mean() for k, v in stats.items() if v} | {
            "reward": rewards.mean(),
            "reward_std": rewards.std(),
            "reward_group_std": group_std.mean(),
            "frac_reward_zero_std": (group_std == 0).float().mean(),
            "advantages/mean": advantages.mean(),
            "advantages/std": advantages.std(),
            "completion_length": mask.sum(-1).mean(),
        }
        return train_metrics(summary, self.optimizer)


register_algo("grpo", GRPOConfig, GRPO)
