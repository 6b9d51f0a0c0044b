"""The one interface every algorithm implements, and the registry the runner reads.

The runner owns the loop (budget, evaluation, checkpoints, logging); a trainer owns
only its update. Adding an algorithm is one module here (its config dataclass at the
top, its trainer class, a `register_algo` call) plus one YAML under `conf/algo/`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Protocol

import torch
from transformers import PreTrainedModel

from bench.config import ConfigError, LoraConfig, RewardSource, register
from bench.meter import Meter
from bench.models import ScalarHeadModel, load_policy, load_trained_state, trained_state, with_gradient_checkpointing, with_lora
from bench.optim import adamw
from bench.phases import Phases, model_bytes
from bench.rollout import Batch, EpochSampler, reward_scores, sample
from bench.stages import Stages
from bench.tasks import Task


class Trainer(Protocol):
    policy: PreTrainedModel
    """What the evaluator samples: the trained model (or, for best-of-N, an `evaluator.SelfSampling` policy)."""

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
    gradient_checkpointing: bool = False
    """`model.gradient_checkpointing`: for every model the trainer trains."""
    lora: LoraConfig = field(default_factory=LoraConfig)
    """`model.lora`: adapters on every model the trainer trains (rank 0: every weight trained)."""

    @torch.no_grad()
    def rewards(self, batch: Batch) -> torch.Tensor:
        """One scalar per completion, [B]: the reward model's score or the task's own check."""
        if self.reward_source == RewardSource.verifiable:
            scores = [self.task.gold_reward(p, c) for p, c in zip(batch.prompts, batch.completions)]
            return torch.tensor(scores, device=self.device)
        return reward_scores(self.reward_model, batch, self.tokenizer.eos_token_id)

    def trainable(self, model: torch.nn.Module, name: str, frozen: torch.nn.Module) -> torch.nn.Module:
        """`model` as the trainer trains it: on the device, with LoRA adapters over `frozen`'s weights where
        `model.lora.rank` > 0, gradient checkpointing where on, watched by the meter as `name`."""
        model = with_lora(model, self.lora, frozen).to(self.device)
        model = with_gradient_checkpointing(model, self.gradient_checkpointing)
        model.train()
        return self.meter.watch(model, name)

    def trainable_policy(self) -> PreTrainedModel:
        """A fresh copy of the SFT model (or adapters over the reference's weights), watched as `policy`."""
        return self.trainable(load_policy(self.stages.sft), "policy", self.reference)


class PolicyTrainer:
    """What every trainer with one trained model shares (DPO, GRPO, RLOO, REINFORCE++): the policy, its
    AdamW, the sampler over its examples (prompts, or DPO's pairs), their checkpoint state and memory.

    `reference`: the trainer runs the frozen reference (a KL term, DPO's log-ratios); `rewarded`: it
    scores samples with `ctx.rewards`, so it runs the reward model unless the reward is verifiable.
    """

    def __init__(self, ctx: Context, lr: float, examples: int, reference: bool, rewarded: bool):
        self.ctx = ctx
        self.policy = ctx.trainable_policy()
        self.optimizer = adamw(self.policy, lr)
        self.sampler = EpochSampler(examples, ctx.seed)
        self.frozen = {"reference": ctx.reference} if reference else {}
        if rewarded and ctx.reward_source == RewardSource.model:
            self.frozen["reward_model"] = ctx.reward_model

    def sample_groups(self, prompts: int, group_size: int, temperature: float) -> Batch:
        """`group_size` completions of each of the next `prompts` training prompts, a group's rows consecutive
        (`group_advantages`' layout)."""
        chosen = [self.ctx.train_prompts[i] for i in self.sampler.take(prompts)]
        return sample(self.policy, self.ctx.tokenizer, [p for p in chosen for _ in range(group_size)], self.ctx.task.cfg.max_new_tokens, temperature)

    def data(self) -> dict[str, float]:
        return self.sampler.epochs()

    def memory(self) -> dict[str, float]:
        counted: set[int] = set()
        out = model_bytes("policy", self.policy, self.optimizer, counted)
        for name, model in self.frozen.items():
            out |= model_bytes(name, model, counted=counted)
        return out

    def state_dict(self) -> dict:
        return {"policy": trained_state(self.policy), "optimizer": self.optimizer.state_dict(), "sampler": self.sampler.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        load_trained_state(self.policy, state["policy"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.sampler.load_state_dict(state["sampler"])


def train_metrics(values: dict[str, torch.Tensor], optimizer: torch.optim.Optimizer) -> dict[str, float]:
    """A step's `train/*` metrics from its scalar tensors, in one host sync, with the learning rate."""
    floats = torch.stack(list(values.values())).tolist()
    return {f"train/{k}": v for k, v in zip(values, floats)} | {"train/lr": optimizer.param_groups[0]["lr"]}


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


from bench.algos import best_of_n, dpo, grpo, ppo, reinforce_pp, rloo  # noqa: E402,F401  (they register themselves)
