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
best-of-N at that N costs on a batch of that many prompts. By default that is `task.n_eval`, the
test prompts it is evaluated on (shared among the processes of a data-parallel run), so the budget
bought exactly the N · n_eval candidates the evaluation draws. The x-axis therefore means serving
cost here and training cost for the RL methods; the reward-KL frontier is where the two compare on
equal terms (Gao et al. 2022, Fig. 1). N grows with the budget, so every evaluation is one point of
best-of-N's own frontier.

The evaluator scores the policy of the current N (`BestOfNPolicy`) on the test and validation
prompts like any other: candidates are drawn on the evaluator's random stream, candidate j of a
batch of prompts always from the same seed, so the N of a later evaluation extends the candidate
set of an earlier one (a best-of-2N contains its best-of-N; only the best so far is kept) and
curves in N are smooth.

KL. `eval/kl_to_ref` is estimated per prompt from its N candidates (`best_of_n_kl_estimate`,
Beirami et al. 2024's exact KL of a discrete distribution): the distinct candidates (identical
completion token ids are one outcome) with their exact reference probabilities exp Σ_t log π_ref,
at the evaluator's temperature, ordered by their score, and the mass no candidate holds treated as
tie-free. The analytic log N - (N - 1)/N (`best_of_n_kl`) is exact only when candidates never
coincide; a peaked π_sft with short completions draws the same text often, and its KL stays below
-log π_sft(best text) however large N grows. So that formula is reported only as the upper bound
it is, `train/kl_upper_bound` in `step()` (there is no `train/kl`: the training candidates'
reference log-probs would be budgeted forward passes). Computing the log-probs costs one more
forward pass of π_sft per candidate at evaluation, outside the budget like all evaluation.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass

import torch

from bench import distributed
from bench.algos import Context, register_algo
from bench.config import ConfigError, RewardSource
from bench.losses import best_of_n_kl, best_of_n_kl_estimate
from bench.phases import model_bytes
from bench.rollout import Batch, choose, reward_scores, sample, token_logprobs


class Selector(str, enum.Enum):
    reward_model = "reward_model"
    reward = "reward"


@dataclass
class BestOfNConfig:
    name: str = "best_of_n"
    selector: Selector = Selector.reward_model
    """What keeps the best candidate: the learned reward model (the proxy), or `reward`, what the online methods
    are trained on (the task's check on a verifiable task with reward=auto: an oracle pass@N reference)."""
    prompts_per_step: int | None = None
    """The training prompts (per process) whose candidates the budget pays for: N · this many samples and
    scores at N. None: `task.n_eval` split among the processes, so compute/flops is what answering the test
    prompts at N costs (an explicit value wins: small tests, a data-parallel run's own share)."""
    candidates_per_step: int = 1
    """How much N grows per step: more candidates per step, fewer evaluations between N = 1 and the budget's N."""
    temperature: float = 1.0
    """Sampling temperature of the candidates (the evaluator's own temperature applies at evaluation)."""

    def __post_init__(self) -> None:
        if (self.prompts_per_step is not None and self.prompts_per_step < 1) or self.candidates_per_step < 1:
            raise ConfigError(f"algo.prompts_per_step and algo.candidates_per_step must be >= 1, got {self.prompts_per_step}, {self.candidates_per_step}")


@dataclass
class Candidates:
    """One batch of prompts' candidates so far, at one key (stream, prompts, length, temperature)."""

    drawn: int
    best: Batch
    """Each prompt's best candidate so far."""
    score: torch.Tensor  # [B]: its score
    seen: list[set[bytes]]
    """Per prompt: a digest of each distinct completion's token ids."""
    logp: list[list[float]]
    """Per prompt: Σ_t log π_ref of each distinct completion, at the sampling temperature."""
    scores: list[list[float]]
    """Per prompt: the score of each distinct completion, from its first draw."""
    kl: torch.Tensor | None = None
    """[B] `best_of_n_kl_estimate` at `drawn`, once asked for."""


class BestOfNPolicy:
    """Best-of-N sampling from a frozen model (the evaluator's `SelfSampling`), its KL to the model estimated
    from the candidates it drew (module docstring, "KL")."""

    def __init__(self, model: torch.nn.Module, score, tokenizer):
        self.model, self.score, self.tokenizer = model, score, tokenizer
        self.n = 1
        self.device = model.device
        self.cache: dict[tuple, Candidates] = {}
        """Per batch of prompts (and its stream): its candidates so far."""

    @torch.no_grad()
    def sample(self, prompts: list[str], max_new_tokens: int, temperature: float) -> Batch:
        stream = int(torch.randint(2**62, ()))  # one draw from the caller's stream: the same at every evaluation
        key = (stream, tuple(prompts), max_new_tokens, temperature)
        state = self.cache.get(key)
        while state is None or state.drawn < self.n:
            drawn = 0 if state is None else state.drawn
            with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
                torch.manual_seed(stream + drawn)  # candidate j always from the same seed
                batch = sample(self.model, self.tokenizer, prompts, max_new_tokens, temperature)
            new = self.score(batch).float()  # [B]
            logp = (token_logprobs(self.model, batch, temperature).double() * batch.completion_mask).sum(-1)  # [B]
            if state is None:
                state = Candidates(0, batch, new, [set() for _ in prompts], [[] for _ in prompts], [[] for _ in prompts])
            else:
                better = new > state.score  # a tie keeps the earlier candidate
                state.best = choose([state.best, batch], better.long(), self.tokenizer.pad_token_id)
                state.score = torch.where(better, new, state.score)
            self._remember(state, batch, logp, new)
            state.drawn, state.kl = drawn + 1, None
        self.cache[key] = state
        return state.best

    @staticmethod
    def _remember(state: Candidates, batch: Batch, logp: torch.Tensor, score: torch.Tensor) -> None:
        """Add each prompt's completion to its distinct candidates, unless its token ids were drawn before (their
        score, on a batch padded otherwise, may differ in the last bits: the token ids decide)."""
        ids = batch.input_ids[:, batch.prompt_len :].cpu()  # [B, C]
        lengths = batch.completion_mask.sum(-1).long().tolist()
        for i, (length, lp, sc) in enumerate(zip(lengths, logp.tolist(), score.tolist())):
            digest = hashlib.blake2b(ids[i, :length].numpy().tobytes(), digest_size=16).digest()
            if digest not in state.seen[i]:
                state.seen[i].add(digest)
                state.logp[i].append(lp)
                state.scores[i].append(sc)

    def kl_to_ref(self, batch: Batch) -> torch.Tensor:
        """[B] KL(best-of-N ‖ π_ref) of each prompt of a batch `sample` returned, estimated from its candidates."""
        state = next((s for s in self.cache.values() if s.best is batch), None)
        if state is None:
            raise ValueError("kl_to_ref takes a batch that BestOfNPolicy.sample returned (at the current N)")
        if state.kl is None:
            estimates = [best_of_n_kl_estimate(torch.tensor(lp, dtype=torch.float64).exp(), torch.tensor(sc), state.drawn)
                         for lp, sc in zip(state.logp, state.scores)]  # fmt: skip
            state.kl = torch.tensor(estimates, dtype=torch.float64)
        return state.kl


def resolve_prompts_per_step(cfg: BestOfNConfig, n_eval: int, processes: int) -> int:
    """Each process's prompts per step: `algo.prompts_per_step`, else its share of the task's `n_eval` test prompts."""
    if cfg.prompts_per_step is not None:
        return cfg.prompts_per_step
    if n_eval % processes:
        raise ConfigError(f"task.n_eval {n_eval} is not divisible by {processes} processes: set algo.prompts_per_step (per process)")
    return n_eval // processes


class BestOfN:
    def __init__(self, cfg: BestOfNConfig, ctx: Context):
        self.per_step = resolve_prompts_per_step(cfg, ctx.task.cfg.n_eval, distributed.world())
        """Each process's prompts: N · this many candidates (× the processes: N · n_eval by default) at N."""
        if self.per_step * distributed.world() > len(ctx.train_prompts):
            raise ValueError(f"algo.prompts_per_step {self.per_step} × {distributed.world()} processes is more than the {len(ctx.train_prompts)} training prompts")
        self.cfg, self.ctx = cfg, ctx
        self.score = ctx.rewards if cfg.selector == Selector.reward else lambda b: reward_scores(ctx.reward_model, b, ctx.tokenizer.eos_token_id)
        self.policy = BestOfNPolicy(ctx.reference, self.score, ctx.tokenizer)
        order = torch.randperm(len(ctx.train_prompts), generator=torch.Generator().manual_seed(ctx.seed))
        start = distributed.rank() * self.per_step  # each process its share of one run's prompts
        self.prompts = [ctx.train_prompts[i] for i in order[start : start + self.per_step].tolist()]
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
        return {f"train/{k}": v for k, v in zip(names, summary)} | {"train/n": float(self.drawn), "train/kl_upper_bound": best_of_n_kl(self.drawn)}

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
