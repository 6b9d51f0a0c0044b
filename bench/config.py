"""Structured configs: the schema every YAML under ``conf/`` is validated against.

Schemas live in the ``schema/*`` config groups (Hydra structured-config tutorial
5.2), so they never show up as choices; ``conf/<group>/<name>.yaml`` picks its
schema in its defaults list and only sets values. Each algorithm's schema sits at
the top of its own module (``bench/algos/*.py``) and is registered from there.
"""

from __future__ import annotations

import enum
import math
import re
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf


class ConfigError(ValueError):
    """A config value that makes the run impossible; raised before any work."""


class BudgetUnit(str, enum.Enum):
    flops = "flops"
    seconds = "seconds"
    steps = "steps"


class RewardSource(str, enum.Enum):
    auto = "auto"
    model = "model"
    verifiable = "verifiable"


class Precision(str, enum.Enum):
    auto = "auto"
    fp32 = "fp32"
    bf16 = "bf16"


class Device(str, enum.Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class WandbMode(str, enum.Enum):
    offline = "offline"
    online = "online"
    disabled = "disabled"


@dataclass
class LoraConfig:
    """LoRA adapters (Hu et al. 2021) through `peft` on every model a run trains (the policy; PPO's critic): the
    trained model is the frozen base plus adapters, and the base's weights are the frozen model's own (the
    reference for the policy, the reward model or reference for the critic), not a second copy. The stages
    (SFT, reward model) stay full fine-tuning: they are cached and shared by every run."""

    rank: int = 0
    """r: the adapters' rank; 0 trains every weight (no adapters)."""
    alpha: float = 16.0
    """The adapters' output is scaled by alpha / rank (peft's `lora_alpha`)."""
    dropout: float = 0.0
    """Dropout on the adapters' input; 0, as every model an algorithm runs has its dropout off (bench/models.py)."""
    target_modules: list[str] = field(default_factory=lambda: ["all-linear"])
    """Module names that get adapters, or `[all-linear]`: every linear layer but the output head (peft)."""

    def __post_init__(self) -> None:
        if self.rank < 0:
            raise ConfigError(f"model.lora.rank {self.rank} is negative; 0 trains every weight (no adapters)")


@dataclass
class ModelConfig:
    """A causal LM built from a `transformers` config (presets) or loaded by name."""

    preset: str = MISSING
    """`tiny`, `small` (built from the fields below) or `hub` (loaded from `name`)."""
    name: str | None = None
    """For `hub`: a model id or a local directory written by `save_pretrained`."""
    hidden_size: int = 64
    num_layers: int = 2
    num_heads: int = 4
    intermediate_size: int = 128
    max_position_embeddings: int = 64
    gradient_checkpointing: bool = False
    """Recompute each block's activations in the backward pass instead of keeping them, for every model a run
    or stage trains (memory for compute). It changes no weight and no FLOP count (the meter counts model
    FLOPs, not the recomputation), so it is not part of a stage's key; it changes seconds and memory, so
    it is part of a run's identity (when on)."""
    lora: LoraConfig = field(default_factory=LoraConfig)

    def __post_init__(self) -> None:
        if self.preset == "hub" and not self.name:
            raise ConfigError("model=hub needs model.name (a hub id or a save_pretrained directory)")
        if self.hidden_size % self.num_heads:
            raise ConfigError(f"model.hidden_size {self.hidden_size} is not divisible by model.num_heads {self.num_heads}")


@dataclass
class TaskConfig:
    """Fields every task has; a task module subclasses it for its own knobs."""

    name: str = MISSING
    n_train: int = 2000
    """Training prompts (SFT demonstrations, preference pairs and RL prompts come from them)."""
    n_eval: int = 256
    """Held-out test prompts: the reported numbers (`eval/*`)."""
    n_val: int = 128
    """Held-out validation prompts (`val/*`): what hyper-parameters are chosen on, never reported as a result."""
    max_new_tokens: int = 8
    """Completion length cap for every sampler (rollout, preference data, evaluation)."""
    sft_target: float | None = None
    """SFT's criterion: train until the SFT model's quality on held-out prompts (accuracy where the task has a
    checker, else mean gold reward) reaches this, checked every `sft.check_every` steps, at most `sft.max_steps`.
    A fixed step count leaves each stage seed's SFT model wherever its run happened to be (arithmetic, small
    preset, 1 000 steps: accuracy 0.375, 0.734, 0.977 on stage seeds 0, 1, 2), so each would start the
    algorithms from another headroom. None: train exactly `sft.steps`."""


@dataclass
class BudgetConfig:
    """The compute every trainer gets (DESIGN.md, 'The budget')."""

    unit: BudgetUnit = BudgetUnit.flops
    amount: float = 1e11
    """FLOPs of every model's forward and backward passes, wall seconds, or optimiser steps."""
    eval_every: float = 0.25
    """Evaluate each time this fraction of the budget is spent (and always at the end)."""

    def __post_init__(self) -> None:
        if not self.amount > 0:  # finite too, but only where a user sets it (RANGES): the stages meter without a budget
            raise ConfigError(f"budget.amount must be > 0, got {self.amount}")
        if self.unit == BudgetUnit.steps and self.amount < 1:
            raise ConfigError(f"budget.amount={self.amount} optimiser steps buys no step: a steps budget must be >= 1")
        if not 0 < self.eval_every <= 1:
            raise ConfigError(f"budget.eval_every must be in (0, 1], got {self.eval_every}")


@dataclass
class SFTConfig:
    """Stage 1: supervised fine-tuning on demonstrations (loss on completion tokens only)."""

    steps: int = 1000
    """Optimiser steps where the task sets no `task.sft_target`; 0 skips SFT and uses the pretrained model as π_sft
    (model=hub: an instruct model)."""
    max_steps: int = 2000
    """With `task.sft_target`: the most steps it may take (the learning-rate schedule's length)."""
    batch_size: int = 32
    lr: float = 1e-3
    check_every: int = 10
    """With `task.sft_target`: steps between two measurements of the held-out quality (the first at this step)."""
    heldout_prompts: int = 1024
    """With `task.sft_target`: train prompts held out of the demonstrations to measure it on (sampled at
    `eval.temperature`, the evaluator's, on a fixed stream: 1 024 give a standard error of 0.016 at accuracy 0.5;
    with 512 and checks every 25 steps, arithmetic's five stage seeds stopped 0.09 apart)."""

    def __post_init__(self) -> None:
        if self.steps < 0:
            raise ConfigError(f"sft.steps must be >= 0, got {self.steps}")


@dataclass
class PreferenceConfig:
    """Stage 2: pairs sampled from the SFT policy, labelled by the simulated annotator."""

    n_pairs: int = 8192
    """Pairs sampled (before `drop_ties`). Enough that DPO makes about two passes over them at the
    default budget (2e12 FLOPs, small preset) where few pairs tie (sentiment): with 1 024 it made
    18 there and over-fitted. Where most pairs tie (arithmetic: 2p(1 - p) of them differ at SFT
    accuracy p) fewer are kept and DPO makes more passes; each run's summary reports its epochs
    (`data.epochs`) and the preference stage how many pairs it kept."""
    drop_ties: bool = True
    """Drop the pairs whose two completions have the same gold reward, as a human annotator skips a
    pair with nothing to choose between (on arithmetic: two wrong or two right answers); else the
    Bradley-Terry draw labels them by coin flip."""
    tau: float = 0.1
    """Bradley-Terry temperature: P(a > b) = sigmoid((r(a) - r(b)) / tau)."""
    label_noise: float = 0.0
    """Probability that an annotator label is flipped after the Bradley-Terry draw."""
    temperature: float = 1.0
    """Sampling temperature of the SFT policy when drawing the two completions."""
    dataset: str | None = None
    """A user's pairs instead (HH-RLHF, TL;DR, ...): a hub id or a `save_to_disk` directory
    with prompt/chosen/rejected columns. Then no pairs are sampled and no labels simulated."""

    def __post_init__(self) -> None:
        if not 0 <= self.label_noise <= 0.5:
            raise ConfigError(f"prefs.label_noise must be in [0, 0.5], got {self.label_noise}")
        if not self.tau > 0:
            raise ConfigError(f"prefs.tau must be > 0, got {self.tau}")


@dataclass
class RewardModelConfig:
    """Stage 3: reward model = policy backbone + scalar head, Bradley-Terry loss on the pairs."""

    epochs: int = 2
    batch_size: int = 32
    lr: float = 1e-3
    heldout: float = 0.1
    """Fraction of pairs held out for the logged pair accuracy."""


@dataclass
class EvalConfig:
    temperature: float = 1.0
    """Sampling temperature; 1.0 so that eval/kl_to_ref is the KL of the policy itself."""
    batch_size: int = 128
    """Held-out prompts sampled per batch."""
    log_samples: int = 16
    """Samples of each evaluation written to samples.jsonl and the wandb table (the first prompts')."""
    seed: int = 1234
    """Fixed sampling seed: every trainer is scored on the same random stream (the SFT baseline's
    samples, compared against by the win rate, come from an independent stream of its own)."""

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ConfigError(f"eval.batch_size must be >= 1, got {self.batch_size}")
        if not self.temperature > 0:
            raise ConfigError(f"eval.temperature must be > 0, got {self.temperature}")


@dataclass
class LoggerConfig:
    """Where the run is logged. A key left unset defers to wandb's own environment variable
    (`WANDB_MODE`, `WANDB_PROJECT`, `WANDB_ENTITY`), then to the default after it."""

    wandb_mode: WandbMode | None = None
    """offline | online | disabled; unset: $WANDB_MODE, else offline."""
    project: str | None = None
    """wandb project; unset: $WANDB_PROJECT, else rlhf-bench."""
    entity: str | None = None
    """wandb entity (user or team); unset: $WANDB_ENTITY, else wandb's default entity."""
    group: str | None = None
    """wandb group; unset: `<task>_<algo>_<group>`, the run's identity minus its seeds (bench/rundir.py),
    so a dashboard draws one line per configuration, averaged over seeds."""


@dataclass
class Config:
    algo: Any = MISSING
    task: Any = MISSING
    model: ModelConfig = MISSING
    budget: BudgetConfig = field(default_factory=BudgetConfig)
    sft: SFTConfig = field(default_factory=SFTConfig)
    prefs: PreferenceConfig = field(default_factory=PreferenceConfig)
    rm: RewardModelConfig = field(default_factory=RewardModelConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    reward: RewardSource = RewardSource.auto
    """What the online methods (PPO, GRPO, RLOO, REINFORCE++, best-of-N) are rewarded with: `model` (the cached reward model), `verifiable`
    (the task's own check, where it has one) or `auto` (verifiable where the task has a
    check, else the model). DPO learns from the pairs either way."""
    seed: int = 0
    """The trainer's seed: initial RNG state, data order, sampling."""
    stage_seed: int = 0
    """The seed of the cached stages and prompt splits. Kept apart from `seed` so that every
    seed and algorithm starts from the same SFT model and reward model (the spread over
    seeds is the trainers' own); sweep it to include the SFT and reward-model variance."""
    device: Device = Device.auto
    """`auto` (CUDA when present), `cpu` or `cuda`."""
    precision: Precision = Precision.auto
    """`auto` (bf16 autocast on CUDA, float32 on the CPU), `fp32`, or `bf16` (autocast, also on the
    CPU). Every log-prob that enters one loss is computed under this same precision."""
    cache_dir: str = "${oc.env:RLHF_BENCH_CACHE,.cache/rlhf-bench}"
    """Where SFT, preference data and reward model are cached, shared by all runs."""
    checkpoint_every: float = 0.25
    """Save a trainer checkpoint each time this fraction of the budget is spent (and at the end)."""
    resume: bool = True
    """A killed run (a checkpoint, no summary) started again with the same config continues
    from its checkpoint; false starts it over. A finished run is reused when its identity
    (bench/rundir.py) is the same, and its directory refused to any other."""
    reuse_other_versions: bool = False
    """Reuse a finished run of the same identity computed under other versions of torch, transformers, datasets
    or this package (bench/rundir.py `COMPUTATION_PACKAGES`) as it is; by default such a run is refused, in one
    line naming the versions, since another version is another computation."""

    def __post_init__(self) -> None:
        if not 0 < self.checkpoint_every <= 1:
            raise ConfigError(f"checkpoint_every must be in (0, 1] (a fraction of the budget), got {self.checkpoint_every}")


HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?")


def check_source(key: str, name: str) -> None:
    """`key`=`name` names a local path that exists or a hub id (`org/name`); anything else fails here, in one line,
    instead of deep inside a library (`model.name=/nonexistent` used to read "Repo id must use alphanumeric")."""
    if Path(name).expanduser().exists():
        return
    if name.startswith(("/", ".", "~")):
        raise ConfigError(f"{key}={name}: no such file or directory")
    if not HUB_ID.fullmatch(name) or "--" in name or ".." in name:
        raise ConfigError(f"{key}={name} is neither an existing path nor a hub id (org/name)")


def register(group: str, name: str, node: type) -> None:
    """Store a schema under ``schema/<group>`` so a YAML can extend it."""
    ConfigStore.instance().store(group=f"schema/{group}", name=name, node=node, package=group)


def _check_known_keys(cfg: DictConfig, schema: type, path: str) -> None:
    # `+key=...` and `++key=...` get past the structured schema; catch them here.
    known = {f.name for f in fields(schema)}
    for key in cfg.keys():
        if key not in known:
            raise ConfigError(f"unknown key {path}{key}; {path.rstrip('.') or 'config'} accepts: {', '.join(sorted(known))}")
        sub = OmegaConf.get_type(cfg, key)
        if is_dataclass(sub) and isinstance(cfg[key], DictConfig):
            _check_known_keys(cfg[key], sub, f"{path}{key}.")


@dataclass(frozen=True)
class Range:
    """The values a numeric key may take: [low, high], either end open; floats must also be finite."""

    low: float
    high: float = math.inf
    open_low: bool = False
    open_high: bool = False

    def __contains__(self, value: float) -> bool:
        above = value > self.low if self.open_low else value >= self.low
        below = value < self.high if self.open_high else value <= self.high
        return math.isfinite(value) and above and below

    def __str__(self) -> str:
        if self.high == math.inf:
            return f"{'>' if self.open_low else '>='} {self.low:g}"
        return f"in {'(' if self.open_low else '['}{self.low:g}, {self.high:g}{')' if self.open_high else ']'}"


POSITIVE, NON_NEGATIVE, COUNT = Range(0, open_low=True), Range(0), Range(1)
UNIT = Range(0, 1)
RANGES: dict[str, Range] = {
    # rates, temperatures, clip ranges, norms: > 0
    "lr": POSITIVE, "critic_lr": POSITIVE, "temperature": POSITIVE, "tau": POSITIVE, "max_grad_norm": POSITIVE,
    "eps": POSITIVE, "eps_low": POSITIVE, "eps_high": POSITIVE, "eps_value": POSITIVE, "adv_eps": POSITIVE,
    # coefficients: a KL weight may be 0 (no penalty); discounts and probabilities are in [0, 1]
    "beta": NON_NEGATIVE, "gamma": UNIT, "lam": UNIT, "label_smoothing": Range(0, 0.5, open_high=True),
    "heldout": Range(0, 1, open_low=True, open_high=True),
    # counts
    "batch_size": COUNT, "minibatches": COUNT, "epochs": COUNT, "group_size": COUNT, "prompts_per_step": COUNT,
    "inner_iterations": COUNT, "candidates_per_step": COUNT, "n_pairs": COUNT, "n_train": COUNT, "n_eval": COUNT,
    "n_val": COUNT, "max_new_tokens": COUNT, "hidden_size": COUNT, "num_layers": COUNT, "num_heads": COUNT,
    "intermediate_size": COUNT, "max_position_embeddings": COUNT, "steps": NON_NEGATIVE, "log_samples": NON_NEGATIVE,
    "check_every": COUNT, "heldout_prompts": COUNT, "max_steps": COUNT, "sft_target": Range(-math.inf),
    # the tasks' own knobs
    "digits": COUNT, "min_len": COUNT, "max_len": COUNT, "target_len": COUNT, "max_words": COUNT,
    "length_penalty": NON_NEGATIVE, "decay": UNIT, "amount": POSITIVE,
}  # fmt: skip
"""Every numeric knob by its name, wherever it sits (algo.lr, sft.lr and rm.lr alike); `tests/test_config.py`
checks that every numeric field of every algorithm's and task's schema has one."""


def check_ranges(node: Any, path: str = "") -> None:
    """Each numeric field of `node` and the dataclasses inside it against `RANGES`: one line naming the key, the
    value and the allowed range. NaN and ±inf pass no range (`algo.beta=nan` used to let a DPO run "finish")."""
    for f in fields(node):
        value = getattr(node, f.name)
        if is_dataclass(value):
            check_ranges(value, f"{path}{f.name}.")
        elif f.name in RANGES and isinstance(value, (int, float)) and not isinstance(value, bool) and value not in RANGES[f.name]:
            raise ConfigError(f"{path}{f.name}={value} is out of range: it must be {RANGES[f.name]}")


def to_object(cfg: DictConfig) -> Config:
    """Resolve, reject unknown keys, run every schema's ``__post_init__`` checks and check every numeric range."""
    _check_known_keys(cfg, Config, "")
    try:
        config = OmegaConf.to_object(cfg)
    except ConfigError:
        raise
    except Exception as e:  # omegaconf wraps the __post_init__ error; keep only its message
        cause = e.__cause__ or e.__context__
        raise ConfigError(str(cause if isinstance(cause, ConfigError) else e).splitlines()[0]) from e
    check_ranges(config)
    return config


ConfigStore.instance().store(name="config_schema", node=Config)
register("model", "model", ModelConfig)
register("budget", "budget", BudgetConfig)
