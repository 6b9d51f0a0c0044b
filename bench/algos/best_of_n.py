"""Best-of-N (Gao et al. 2022's reference point): no training; sample N completions from π_sft and keep
the one the reward scores highest.

Two models, both frozen: π_sft (the reference) and the reward model, or the task's check where the
online methods are rewarded with it (`reward=auto` on a verifiable task: best-of-N then picks with
the verifier, as RL optimises it; `reward=model` picks with the learned reward model). The selector
is `ctx.rewards`, the very reward PPO, GRPO, RLOO and REINFORCE++ maximise.

The budget buys N. Best-of-N spends its compute answering prompts, not training: each step draws
`candidates_per_step` more completions for each of a fixed set of `prompts_per_step` training
prompts and scores them, so after t steps N = t · candidates_per_step and `compute/flops` is what
best-of-N at that N costs on a batch of that many prompts (256 by default, the size of the test
set). The x-axis therefore means serving cost here and training cost for the RL methods; the
reward-KL frontier is where the two compare on equal terms (Gao et al. 2022, Fig. 1). N grows
with the budget, so every evaluation is one point of best-of-N's own frontier.

The evaluator scores the policy of the current N (`BestOfNPolicy`) on the test and validation
prompts like any other: candidates are drawn on the evaluator's random stream, candidate j of a
batch of prompts always from the same seed, so the N of a later evaluation extends the candidate
set of an earlier one (a best-of-2N contains its best-of-N) and curves in N are smooth. Its
`eval/kl_to_ref` is the analytic `best_of_n_kl(N)` = log N - (N - 1)/N: exact for a reward with
no ties, an upper bound with ties (a 0/1 check).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from bench.algos import Context, register_algo
from bench.config import ConfigError, RewardSource
from bench.losses import best_of_n_kl
from bench.phases import model_bytes
from bench.rollout import Batch, choose, sample


@dataclass
class BestOfNConfig:
    name: str = "best_of_n"
    prompts_per_step: int = 256
    """The training prompts whose candidates the budget pays for: N · this many samples and scores
    at N (default: the size of the test set, so compute/flops is what answering it costs)."""
    candidates_per_step: int = 1
    """How much N grows per step: more candidates per step, fewer evaluations between N = 1 and the budget's N."""
    temperature: float = 1.0
    """Sampling temperature of the candidates (the evaluator's own temperature applies at evaluation)."""

    def __post_init__(self) -> None:
        if self.prompts_per_step < 1 or self.candidates_per_step < 1:
            raise ConfigError(f"algo.prompts_per_step and algo.candidates_per_step must be >= 1, got {self.prompts_per_step}, {self.candidates_per_step}")


class BestOfNPolicy:
    """Best-of-N sampling from a frozen model (the evaluator's `SelfSampling`)."""

    def __init__(self, model: torch.nn.Module, ctx: Context):
        self.model, self.ctx = model, ctx
        self.n = 1
        self.device = model.device
        self.candidates: dict[tuple, list[tuple[Batch, torch.Tensor]]] = {}
        """Per batch of prompts (and its stream): the candidates drawn so far and their rewards."""

    @torch.no_grad()
    def sample(self, prompts: list[str], max_new_tokens: int, temperature: float) -> Batch:
        stream = int(torch.randint(2**62, ()))  # one draw from the caller's stream: the same at every evaluation
        drawn = self.candidates.setdefault((stream, tuple(prompts), max_new_tokens, temperature), [])
        while len(drawn) < self.n:
            with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
                torch.manual_seed(stream + len(drawn))  # candidate j always from the same seed
                batch = sample(self.model, self.ctx.tokenizer, prompts, max_new_tokens, temperature)
            drawn.append((batch, self.ctx.rewards(batch).float()))
        rewards = torch.stack([r for _, r in drawn[: self.n]])  # [N, B]
        return choose([b for b, _ in drawn[: self.n]], rewards.argmax(0), self.ctx.tokenizer.pad_token_id)  # the first best on a tie

    def kl_to_ref(self, batch: Batch) -> torch.Tensor:
        return torch.full((len(batch),), best_of_n_kl(self.n))


class BestOfN:
    def __init__(self, cfg: BestOfNConfig, ctx: Context):
        self.cfg, self.ctx = cfg, ctx
        self.policy = BestOfNPolicy(ctx.reference, ctx)
        order = torch.randperm(len(ctx.train_prompts), generator=torch.Generator().manual_seed(ctx.seed))
        self.prompts = [ctx.train_prompts[i] for i in order[: cfg.prompts_per_step].tolist()]
        self.best = torch.full((len(self.prompts),), -torch.inf, device=ctx.device)
        """The best reward among each prompt's candidates so far: best-of-N's reward on its own prompts."""
        self.drawn = 0

    def step(self) -> dict[str, float]:
        cfg, ctx = self.cfg, self.ctx

        # 1. `candidates_per_step` more completions for each prompt, from π_sft.
        with ctx.phases("rollout"):
            batch = sample(ctx.reference, ctx.tokenizer, self.prompts * cfg.candidates_per_step, ctx.task.cfg.max_new_tokens, cfg.temperature)

        # 2. Scored by the reward; each prompt keeps its best.
        with ctx.phases("scoring"):
            rewards = ctx.rewards(batch).float().view(cfg.candidates_per_step, -1)  # [c, B]
            self.best = torch.maximum(self.best, rewards.max(0).values)
        self.drawn += cfg.candidates_per_step
        self.policy.n = self.drawn
        ctx.meter.steps += 1  # a round of draws: what a steps budget counts for best-of-N
        ctx.meter.samples += len(batch)

        summary = torch.stack([self.best.mean(), rewards.mean(), rewards.std(), batch.completion_mask.sum(-1).mean()]).tolist()
        names = ["reward", "candidate_reward", "candidate_reward_std", "completion_length"]
        return {f"train/{k}": v for k, v in zip(names, summary)} | {"train/n": float(self.drawn), "train/kl": best_of_n_kl(self.drawn)}

    def data(self) -> dict[str, float]:
        return {"examples": len(self.prompts), "epochs": float(self.drawn)}  # each prompt sampled N times

    def memory(self) -> dict[str, float]:
        out = model_bytes("reference", self.ctx.reference)
        if self.ctx.reward_source == RewardSource.model:
            out |= model_bytes("reward_model", self.ctx.reward_model)
        return out

    def state_dict(self) -> dict:
        return {"best": self.best, "drawn": self.drawn}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.drawn = state["best"].to(self.ctx.device), state["drawn"]
        self.policy.n = self.drawn


register_algo("best_of_n", BestOfNConfig, BestOfN)
