"""PPO for language models, InstructGPT style (Ouyang et al. 2022; Ziegler et al. 2019).

Four models: the actor (policy) and the critic are trained; the reference and the reward
model are frozen. Each step samples one completion per prompt and builds per-token rewards

    r_t = -β (log π_old(c_t) - log π_ref(c_t))   + score(completion) on the last token

then GAE(γ, λ) advantages (whitened over the batch), returns = advantages + values,
and K epochs over minibatches of the clipped surrogate (ε) for the actor and the clipped
value loss (ε_v) for the critic, each with its own optimiser and gradient clipping.

Departures from the paper:
  1. The critic is initialised from the reward model (`critic_from_reward_model`, the
     InstructGPT choice), or from the SFT backbone with a fresh head.
  2. No pretraining-mix term (PPO-ptx): the benchmark compares RL objectives alone.
  3. The actor loss is a token mean over the minibatch (the usual choice in TRL, OpenRLHF).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from bench.algos import Context, register_algo, train_metrics
from bench.config import ConfigError, RewardSource
from bench.losses import aggregate, clip_fraction, clipped_surrogate, clipped_value_loss, gae, masked_mean, token_rewards, whiten
from bench.models import ScalarHeadModel, load_policy, load_trained_state, trained_state
from bench.optim import adamw, clip_and_step
from bench.phases import model_bytes
from bench.rollout import EpochSampler, sample, sequence_values, token_logprobs


@dataclass
class PPOConfig:
    name: str = "ppo"
    batch_size: int = 64
    """Prompts (= completions) per rollout."""
    minibatches: int = 2
    """Minibatches each epoch splits the rollout into; must divide batch_size."""
    epochs: int = 2
    """K: passes over each rollout (InstructGPT: 1 to 4)."""
    beta: float = 0.05
    """β: per-token KL penalty in the reward (InstructGPT: 0.02)."""
    gamma: float = 1.0
    """γ: discount (1: the score at the end counts fully for every token)."""
    lam: float = 0.95
    """λ of GAE (bias-variance trade-off of the advantages)."""
    eps: float = 0.2
    """ε: actor ratio clip."""
    eps_value: float = 0.2
    """ε_v: how far the value may move from its rollout estimate before the loss is clipped."""
    whiten_advantages: bool = True
    """Whiten advantages over the batch (masked mean 0, std 1)."""
    critic_from_reward_model: bool = True
    """Initialise the critic from the reward model (else from the SFT backbone, fresh head)."""
    temperature: float = 1.0
    """Sampling temperature of the rollouts."""
    lr: float = 1e-4
    """Actor AdamW learning rate."""
    critic_lr: float = 1e-4
    """Critic AdamW learning rate."""
    max_grad_norm: float = 1.0

    def __post_init__(self) -> None:
        if self.batch_size % self.minibatches:
            raise ConfigError(f"algo.batch_size {self.batch_size} is not divisible by algo.minibatches {self.minibatches}")


class PPO:
    def __init__(self, cfg: PPOConfig, ctx: Context):
        self.cfg, self.ctx = cfg, ctx
        self.policy = ctx.trainable_policy()
        critic = (
            ScalarHeadModel.from_pretrained(ctx.stages.reward_model)
            if cfg.critic_from_reward_model
            else ScalarHeadModel.from_policy(load_policy(ctx.stages.sft))
        )
        self.critic = ctx.trainable(critic, "critic", ctx.reward_model if cfg.critic_from_reward_model else ctx.reference)
        self.actor_opt = adamw(self.policy, cfg.lr)
        self.critic_opt = adamw(self.critic, cfg.critic_lr)
        self.sampler = EpochSampler(len(ctx.train_prompts), ctx.seed)
        self.shuffle = torch.Generator().manual_seed(ctx.seed + 1)

    def step(self) -> dict[str, float]:
        cfg, ctx = self.cfg, self.ctx

        # 1. Rollout: one completion per prompt.
        with ctx.phases("rollout"):
            prompts = [ctx.train_prompts[i] for i in self.sampler.take(cfg.batch_size)]
            batch = sample(self.policy, ctx.tokenizer, prompts, ctx.task.cfg.max_new_tokens, cfg.temperature)
            mask = batch.completion_mask  # [B, C]

        # 2. Everything frozen about it: old log-probs, reference log-probs, values, score, then
        #    per-token rewards (KL penalty everywhere, the score on the last completion token) and GAE.
        with ctx.phases("scoring"):
            with torch.no_grad():
                logp_old = token_logprobs(self.policy, batch, cfg.temperature)  # [B, C]
                logp_ref = token_logprobs(ctx.reference, batch, cfg.temperature)  # [B, C]
                values_old = sequence_values(self.critic, batch) * mask  # [B, C]
            scores = ctx.rewards(batch).float()  # [B]
            kl = (logp_old - logp_ref) * mask  # [B, C]
            rewards = token_rewards(scores, kl, mask, cfg.beta)  # [B, C]
            advantages, returns = gae(rewards, values_old, mask, cfg.gamma, cfg.lam)  # [B, C] each
            if cfg.whiten_advantages:
                advantages = whiten(advantages, mask)

        # 3. K epochs over minibatches: clipped surrogate for the actor, clipped value loss for the critic.
        stats: dict[str, list[torch.Tensor]] = {k: [] for k in ["policy_loss", "value_loss", "clip_frac", "value_clip_frac", "entropy", "approx_kl", "grad_norm", "critic_grad_norm"]}
        with ctx.phases("update"):
            size = cfg.batch_size // cfg.minibatches
            for _ in range(cfg.epochs):
                perm = torch.randperm(len(batch), generator=self.shuffle).to(ctx.device)
                for start in range(0, len(batch), size):
                    idx = perm[start : start + size]
                    mb, m = batch.select(idx), mask[idx]
                    logp, entropy = token_logprobs(self.policy, mb, cfg.temperature, with_entropy=True)  # [b, C]
                    values = sequence_values(self.critic, mb)  # [b, C]
                    policy_loss = aggregate(clipped_surrogate(logp, logp_old[idx], advantages[idx], cfg.eps, cfg.eps), m, "token_mean")
                    value_loss = aggregate(clipped_value_loss(values, values_old[idx], returns[idx], cfg.eps_value), m, "token_mean")
                    (policy_loss + value_loss).backward()  # disjoint parameters: each model gets its own gradient
                    stats["grad_norm"].append(clip_and_step(self.policy, self.actor_opt, cfg.max_grad_norm))
                    stats["critic_grad_norm"].append(clip_and_step(self.critic, self.critic_opt, cfg.max_grad_norm))
                    ctx.meter.steps += 1
                    with torch.no_grad():
                        log_ratio = logp - logp_old[idx]
                        stats["policy_loss"].append(policy_loss.detach())
                        stats["value_loss"].append(value_loss.detach())
                        stats["clip_frac"].append(clip_fraction(logp, logp_old[idx], advantages[idx], m, cfg.eps, cfg.eps))
                        stats["value_clip_frac"].append(masked_mean(((values - values_old[idx]).abs() > cfg.eps_value).float(), m))
                        stats["entropy"].append(masked_mean(entropy, m))
                        stats["approx_kl"].append(masked_mean((log_ratio.exp() - 1) - log_ratio, m))  # k3 of π_old‖π
        ctx.meter.samples += len(batch)

        # 4. Metrics, one host sync.
        residual = ((returns - values_old) * mask)[mask.bool()]
        explained_var = 1 - residual.var() / returns[mask.bool()].var().clamp(min=1e-8)
        summary = {k: torch.stack(v).mean() for k, v in stats.items()} | {
            "loss": torch.stack(stats["policy_loss"]).mean() + torch.stack(stats["value_loss"]).mean(),
            "reward": scores.mean(),
            "reward_std": scores.std(),
            "kl": kl.sum(-1).mean(),
            "advantages/mean": masked_mean(advantages, mask),
            "advantages/std": advantages[mask.bool()].std(),
            "explained_variance": explained_var,
            "completion_length": mask.sum(-1).mean(),
        }
        return train_metrics(summary, self.actor_opt)

    def data(self) -> dict[str, float]:
        return self.sampler.epochs()  # over the prompts

    def memory(self) -> dict[str, float]:
        counted: set[int] = set()
        out = model_bytes("policy", self.policy, self.actor_opt, counted) | model_bytes("critic", self.critic, self.critic_opt, counted)
        out |= model_bytes("reference", self.ctx.reference, counted=counted)
        if self.ctx.reward_source == RewardSource.model:
            out |= model_bytes("reward_model", self.ctx.reward_model, counted=counted)
        return out

    def state_dict(self) -> dict:
        return {
            "policy": trained_state(self.policy),
            "critic": trained_state(self.critic),
            "actor_opt": self.actor_opt.state_dict(),
            "critic_opt": self.critic_opt.state_dict(),
            "sampler": self.sampler.state_dict(),
            "shuffle": self.shuffle.get_state(),
        }

    def load_state_dict(self, state: dict) -> None:
        load_trained_state(self.policy, state["policy"])
        load_trained_state(self.critic, state["critic"])
        self.actor_opt.load_state_dict(state["actor_opt"])
        self.critic_opt.load_state_dict(state["critic_opt"])
        self.sampler.load_state_dict(state["sampler"])
        self.shuffle.set_state(state["shuffle"])


register_algo("ppo", PPOConfig, PPO)
