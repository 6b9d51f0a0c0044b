"""Best-of-N (Gao et al. 2022's reference point): no training; sample N completions from π_sft and keep the
one the proxy reward model scores highest.

Two models, both frozen: π_sft (the reference) and the reward model. The selector is the learned
reward model (`selector=reward_model`, DESIGN's definition) on every task, verifiable ones included:
picking with the task's own check would read the answer key of the test prompts, an oracle pass@N
no trained policy has. `selector=reward` picks with what the online methods are trained on
(`ctx.rewards`: the check on a verifiable task with `reward=auto`), a labelled upper reference.

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
set of an earlier one (a best-of-2N contains its best-of-N; only the best so far is kept) and
curves in N are smooth. Its `eval/kl_to_ref` is the analytic `best_of_n_kl(N)` = log N - (N - 1)/N:
exact for a reward with no ties, an upper bound with ties.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import torch

from bench import distributed
from bench.algos import Context, register_algo
from bench.config import ConfigError, RewardSource
from bench.losses import best_of_n_kl
from bench.phases import model_bytes
from bench.rollout import Batch, choose, reward_scores, sample


class Selector(str, enum.Enum):
    reward_model = "reward_model"
    reward = "reward"


@dataclass
class BestOfNConfig:
    name: str = "best_of_n"
    selector: Selector = Selector.reward_model
    """What keeps the best candidate: the learned reward model (the proxy), or `reward`, what the online methods
    are trained on (the task's check on a verifiable task with reward=auto: an oracle pass@N reference)."""
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

    def __init__(self, model: torch.nn.Module, score, tokenizer):
        self.model, self.score, self.tokenizer = model, score, tokenizer
        self.n = 1
        self.device = model.device
        self.best: dict[tuple, tuple[int, Batch, torch.Tensor]] = {}
        """Per batch of prompts (and its stream): how many candidates were drawn, the best of each prompt and its score."""

    @torch.no_grad()
    def sample(self, prompts: list[str], max_new_tokens: int, temperature: float) -> Batch:
        stream = int(torch.randint(2**62, ()))  # one draw from the caller's stream: the same at every evaluation
        key = (stream, tuple(prompts), max_new_tokens, temperature)
        drawn, best, score = self.best.get(key, (0, None, None))
        while drawn < self.n:
            with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
                torch.manual_seed(stream + drawn)  # candidate j always from the same seed
                batch = sample(self.model, self.tokenizer, prompts, max_new_tokens, temperature)
            new = self.score(batch).float()
            if best is None:
                best, score = batch, new
            else:
                better = new > score  # a tie keeps the earlier candidate
                best, score = choose([best, batch], better.long(), self.tokenizer.pad_token_id), torch.where(better, new, score)
            drawn += 1
        self.best[key] = (drawn, best, score)
        return best

    def kl_to_ref(self, batch: Batch) -> torch.Tensor:
        return torch.full((len(batch),), best_of_n_kl(self.n))


class BestOfN:
    def __init__(self, cfg: BestOfNConfig, ctx: Context):
        if cfg.prompts_per_step * distributed.world() > len(ctx.train_prompts):
            raise ValueError(f"algo.prompts_per_step {cfg.prompts_per_step} × {distributed.world()} processes is more than the {len(ctx.train_prompts)} training prompts")
        self.cfg, self.ctx = cfg, ctx
        self.score = ctx.rewards if cfg.selector == Selector.reward else lambda b: reward_scores(ctx.reward_model, b, ctx.tokenizer.eos_token_id)
        self.policy = BestOfNPolicy(ctx.reference, self.score, ctx.tokenizer)
        order = torch.randperm(len(ctx.train_prompts), generator=torch.Generator().manual_seed(ctx.seed))
        start = distributed.rank() * cfg.prompts_per_step  # each process its share of one run's prompts
        self.prompts = [ctx.train_prompts[i] for i in order[start : start + cfg.prompts_per_step].tolist()]
        self.best_reward = torch.full((len(self.prompts),), -torch.inf, device=ctx.device)
        """The best reward among each prompt's candidates so far: best-of-N's reward on its own prompts."""
        self.drawn = 0

    def step(self) -> dict[str, float]:
        cfg, ctx = self.cfg, self.ctx

        # 1. `candidates_per_step` more completions for each prompt, from π_sft.
        with ctx.phases("rollout"):
            batch = sample(ctx.reference, ctx.tokenizer, self.prompts * cfg.candidates_per_step, ctx.task.cfg.max_new_tokens, cfg.temperature)

        # 2. Scored by the reward; each prompt keeps its best.
        with ctx.phases("scoring"):
            rewards = self.score(batch).float().view(cfg.candidates_per_step, -1)  # [c, B]
            self.best_reward = torch.maximum(self.best_reward, rewards.max(0).values)
        self.drawn += cfg.candidates_per_step
        self.policy.n = self.drawn
        ctx.meter.steps += 1  # a round of draws: what a steps budget counts for best-of-N
        ctx.meter.samples += len(batch)

        summary = torch.stack([self.best_reward.mean(), rewards.mean(), batch.completion_mask.sum(-1).mean()]).tolist()
        names = ["reward", "candidate_reward", "completion_length"]
        return {f"train/{k}": v for k, v in zip(names, summary)} | {"train/n": float(self.drawn), "train/kl": best_of_n_kl(self.drawn)}

    def data(self) -> dict[str, float]:
        return {"examples": len(self.prompts), "epochs": float(self.drawn)}  # each prompt sampled N times

    def memory(self) -> dict[str, float]:
        out = model_bytes("reference", self.ctx.reference)
        if self.cfg.selector == Selector.reward_model or self.ctx.reward_source == RewardSource.model:
            out |= model_bytes("reward_model", self.ctx.reward_model)
        return out

    def state_dict(self) -> dict:
        return {"best_reward": self.best_reward, "drawn": self.drawn}

    def load_state_dict(self, state: dict) -> None:
        self.best_reward, self.drawn = state["best_reward"].to(self.ctx.device), state["drawn"]
        self.policy.n = self.drawn


register_algo("best_of_n", BestOfNConfig, BestOfN)
