"""The one interface every algorithm implements, and the registry the runner reads.

The runner owns the loop (budget, evaluation, checkpoints, logging); a trainer owns
only its update. Adding an algorithm is one module here (its config dataclass at the
top, its trainer class, a `register_algo` call) plus one YAML under `conf/algo/`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol

import torch
from transformers import PreTrainedModel

from bench.config import ConfigError, RewardSource, register
from bench.meter import Meter
from bench.models import ScalarHeadModel, load_policy
from bench.phases import Phases
from bench.rollout import Batch, reward_scores
from bench.stages import Stages
from bench.tasks import Task


class Trainer(Protocol):
    policy: PreTrainedModel

    def step(self) -> dict[str, float]:
        """One optimisation step: collect what it needs, update, return `train/*` metrics."""

    def state_dict(self) -> dict: ...
    def load_state_dict(self, state: dict) -> None: ...

    def memory(self) -> dict[str, float]:
        """`memory/<model>/{param,grad,optimizer}_bytes` for every model the algorithm runs."""

    def data(self) -> dict[str, float]:
        """What one epoch passes over and how many epochs the run made: `{"examples": n, "epochs": seen / n}`."""


@dataclass
class Context:
    """What the runner hands every trainer. Frozen models are shared with the evaluator."""

    task: Task
    tokenizer: object
    device: torch.device
    meter: Meter
    phases: Phases
    train_prompts: list[str]
    stages: Stages
    reference: PreTrainedModel
    reward_model: ScalarHeadModel
    reward_source: RewardSource
    """`model` or `verifiable` (resolved from `auto` by `resolve_reward_source`)."""
    seed: int

    @torch.no_grad()
    def rewards(self, batch: Batch) -> torch.Tensor:
        """One scalar per completion, [B]: the reward model's score or the task's own check."""
        if self.reward_source == RewardSource.verifiable:
            scores = [self.task.gold_reward(p, c) for p, c in zip(batch.prompts, batch.completions)]
            return torch.tensor(scores, device=self.device)
        return reward_scores(self.reward_model, batch, self.tokenizer.eos_token_id)

    def trainable_policy(self) -> PreTrainedModel:
        """A fresh copy of the SFT model, watched by the meter as `policy`."""
        policy = load_policy(self.stages.sft).to(self.device)
        policy.train()
        return self.meter.watch(policy, "policy")


def resolve_reward_source(source: RewardSource, task: Task) -> RewardSource:
    if source == RewardSource.auto:
        return RewardSource.verifiable if task.has_checker else RewardSource.model
    if source == RewardSource.verifiable and not task.has_checker:
        raise ConfigError(f"reward=verifiable but task {task.cfg.name} has no checker; use reward=model (or auto)")
    return source


ALGOS: dict[str, Callable[[object, Context], Trainer]] = {}


def register_algo(name: str, schema: type, cls: Callable[[object, Context], Trainer]) -> None:
    register("algo", name, schema)
    ALGOS[name] = cls


def build_trainer(cfg, ctx: Context) -> Trainer:
    if cfg.name not in ALGOS:
        raise ConfigError(f"unknown algorithm {cfg.name!r}; available: {', '.join(sorted(ALGOS))}")
    return ALGOS[cfg.name](cfg, ctx)


from bench.algos import dpo, grpo, ppo  # noqa: E402,F401  (they register themselves)
