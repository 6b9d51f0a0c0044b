"""REINFORCE++ (Hu 2025): PPO's per-token rewards and clipped surrogate, no critic.

Three models: the policy (trained); the reference and the reward model (or the task's
verifiable reward) frozen. Each step samples one completion per prompt (k with the
`baseline` variant), builds PPO's per-token rewards

    r_t = -β (log π_old(c_t) - log π_ref(c_t))   + score(completion) on the last token

and replaces the critic by the batch: the advantage of token t is its reward-to-go
G_t = Σ_{s>=t} r_s (γ = 1), whitened over every completion token of the batch
(`reinforce_pp_advantages`). The `baseline` variant (`group_size` > 1) first subtracts
the group's mean return from each completion's, then whitens the same way. The update
is PPO's: `epochs` passes of shuffled minibatches of the clipped surrogate (ε), token mean.

Departures from the paper and OpenRLHF:
  1. The KL penalty is the k1 estimate log π_old - log π_ref per token (PPO's); OpenRLHF offers k2 and k3.
  2. The baseline variant subtracts the group's mean *return* (score plus its KL penalties), where
     OpenRLHF's reinforce_baseline subtracts the group's mean score: the baseline is then the group mean of
     the very quantity being centred (`reinforce_pp_advantages`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from bench.algos import Context, PolicyTrainer, register_algo, train_metrics
from bench.config import ConfigError
from bench.losses import aggregate, clip_fraction, clipped_surrogate, masked_mean, reinforce_pp_advantages, token_rewards
from bench.optim import clip_and_step
from bench.rollout import token_logprobs


@dataclass
class ReinforcePPConfig:
    name: str = "reinforce_pp"
    group_size: int = 1
    """Completions per prompt: 1 (REINFORCE++), or k >= 2 for the `baseline` variant (group mean subtracted)."""
    batch_size: int = 64
    """Completions per rollout (PPO's default); with group_size k, batch_size / k prompts."""
    minibatches: int = 2
    """Minibatches each epoch splits the rollout into (whole groups each); must divide the prompts per rollout."""
    epochs: int = 1
    """Passes over each rollout (OpenRLHF: 1)."""
    beta: float = 0.05
    """β: per-token KL penalty in the reward (PPO's default here; OpenRLHF's examples: 0.01 to 0.001)."""
    eps: float = 0.2
    """ε: ratio clip (paper: 0.2)."""
    temperature: float = 1.0
    """Sampling temperature of the rollouts."""
    lr: float = 5e-5
    """AdamW learning rate (GRPO's default: the same critic-free update size)."""
    max_grad_norm: float = 1.0

    def __post_init__(self) -> None:
        if self.group_size < 1 or self.batch_size % self.group_size:
            raise ConfigError(f"algo.batch_size {self.batch_size} is not a multiple of algo.group_size {self.group_size}")
        if self.minibatches < 1 or self.epochs < 1:
            raise ConfigError(f"algo.minibatches and algo.epochs must be >= 1, got {self.minibatches}, {self.epochs}")
        if (self.batch_size // self.group_size) % self.minibatches:
            raise ConfigError(f"algo.minibatches {self.minibatches} does not divide the {self.batch_size // self.group_size} prompts per rollout")


class ReinforcePP(PolicyTrainer):
    def __init__(self, cfg: ReinforcePPConfig, ctx: Context):
        super().__init__(ctx, cfg.lr, len(ctx.train_prompts), reference=True, rewarded=True)
        self.cfg = cfg
        self.shuffle = torch.Generator().manual_seed(ctx.seed + 1)

    def step(self) -> dict[str, float]:
        cfg, ctx = self.cfg, self.ctx
        k = cfg.group_size

        # 1. Rollout: one completion per prompt (k, groups in consecutive rows, for the baseline variant).
        with ctx.phases("rollout"):
            batch = self.sample_groups(cfg.batch_size // k, k, cfg.temperature)
            mask = batch.completion_mask  # [B, C]

        # 2. PPO's per-token rewards; the batch (and the group) stands in for the critic.
        with ctx.phases("scoring"):
            with torch.no_grad():
                logp_old = token_logprobs(self.policy, batch, cfg.temperature)  # [B, C]
                logp_ref = token_logprobs(ctx.reference, batch, cfg.temperature)  # [B, C]
            scores = ctx.rewards(batch).float()  # [B]
            kl = (logp_old - logp_ref) * mask  # [B, C]
            advantages = reinforce_pp_advantages(token_rewards(scores, kl, mask, cfg.beta), mask, k if k > 1 else None)  # [B, C]

        # 3. PPO's update without the critic: epochs of shuffled minibatches (whole groups), clipped surrogate.
        stats: dict[str, list[torch.Tensor]] = {name: [] for name in ("loss", "entropy", "clip_frac", "approx_kl", "grad_norm")}
        with ctx.phases("update"):
            groups = len(batch) // k
            for _ in range(cfg.epochs):
                perm = torch.randperm(groups, generator=self.shuffle).to(ctx.device)
                for chunk in perm.chunk(cfg.minibatches):
                    idx = (chunk[:, None] * k + torch.arange(k, device=ctx.device)).flatten()  # the rows of these groups
                    mb, m = batch.select(idx), mask[idx]
                    logp, entropy = token_logprobs(self.policy, mb, cfg.temperature, with_entropy=True)  # [b, C]
                    loss = aggregate(clipped_surrogate(logp, logp_old[idx], advantages[idx], cfg.eps, cfg.eps), m, "token_mean")
                    loss.backward()
                    stats["grad_norm"].append(clip_and_step(self.policy, self.optimizer, cfg.max_grad_norm))
                    ctx.meter.steps += 1
                    with torch.no_grad():
                        log_ratio = logp - logp_old[idx]
                        stats["loss"].append(loss.detach())
                        stats["entropy"].append(masked_mean(entropy, m))
                        stats["clip_frac"].append(clip_fraction(logp, logp_old[idx], advantages[idx], m, cfg.eps, cfg.eps))
                        stats["approx_kl"].append(masked_mean((log_ratio.exp() - 1) - log_ratio, m))  # k3 of π_old‖π
        ctx.meter.samples += len(batch)

        # 4. Metrics, one host sync.
        summary = {name: torch.stack(v).mean() for name, v in stats.items()} | {
            "reward": scores.mean(),
            "reward_std": scores.std(),
            "kl": kl.sum(-1).mean(),
            "advantages/mean": masked_mean(advantages, mask),
            "advantages/std": advantages[mask.bool()].std(),
            "completion_length": mask.sum(-1).mean(),
        }
        return train_metrics(summary, self.optimizer)

    def state_dict(self) -> dict:
        return super().state_dict() | {"shuffle": self.shuffle.get_state()}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.shuffle.set_state(state["shuffle"])


register_algo("reinforce_pp", ReinforcePPConfig, ReinforcePP)
