"""Tasks: prompts, demonstrations, a gold reward and (where one exists) a correctness check.

A task is generated locally and deterministically from a seed. Text is
whitespace-separated words, so one word is one token of the local tokenizer and
any hub tokenizer reads the same strings. Adding a task is one module here
(its config dataclass, its class, a `register_task` call) plus one YAML under
``conf/task/``.
"""

from __future__ import annotations

import random
from typing import Callable, NamedTuple, Protocol

from bench.config import ConfigError, TaskConfig, register


class Task(Protocol):
    cfg: TaskConfig
    vocabulary: list[str]
    """Every word a prompt or completion may contain (the local tokenizer's vocabulary)."""
    has_checker: bool
    """True where `correct` is an exact check (reported as eval/accuracy)."""
    best_gold_reward: float
    """The highest gold reward any completion can get (the ceiling the trainers aim at)."""
    chat: bool
    """Prompts are user turns, rendered through the tokenizer's chat template (`chat_prompts`)."""

    def sample_prompt(self, rng: random.Random) -> str: ...
    def demonstration(self, prompt: str, rng: random.Random) -> str: ...
    def gold_reward(self, prompt: str, completion: str) -> float: ...
    def correct(self, prompt: str, completion: str) -> bool: ...


TASKS: dict[str, Callable[[TaskConfig], Task]] = {}


def register_task(name: str, schema: type[TaskConfig], cls: Callable[[TaskConfig], Task]) -> None:
    register("task", name, schema)
    TASKS[name] = cls


def build_task(cfg: TaskConfig) -> Task:
    if cfg.name not in TASKS:
        raise ConfigError(f"unknown task {cfg.name!r}; available: {', '.join(sorted(TASKS))}")
    return TASKS[cfg.name](cfg)


class PromptSplits(NamedTuple):
    train: list[str]
    """SFT demonstrations, preference pairs and RL prompts."""
    test: list[str]
    """The reported numbers (`eval/*`): never used to choose anything."""
    val: list[str]
    """Hyper-parameter choice only (`val/*`, the tuning objective)."""


def prompt_splits(task: Task, seed: int) -> PromptSplits:
    """Disjoint train, test and validation prompts, the same for every run with this task and seed.

    The validation prompts are drawn first, from a stream of their own that no stage seed enters, so they are
    the same for every stage seed; the train and test prompts are then drawn from the seed's stream, skipping
    them. Drawn per stage seed from one shared pool, a tuning run's validation prompts (stage seed 3) were
    the reported runs' test prompts (stage seeds 0-2): 63 of 128 on gsm8k. A task read from a data set
    (`prompts(split)`) gives its train prompts from its train split and its validation and test prompts
    from its test split, split the same way."""
    for key in ("n_train", "n_eval", "n_val"):
        if getattr(task.cfg, key) < 1:
            raise ConfigError(f"task.{key} must be >= 1, got {getattr(task.cfg, key)}")
    if hasattr(task, "prompts"):
        return _dataset_splits(task, seed)
    n_train, n_test, n_val = task.cfg.n_train, task.cfg.n_eval, task.cfg.n_val
    val = _distinct(task, random.Random(f"{task.cfg.name}-validation"), n_val, set(), n_train + n_test + n_val)
    rest = _distinct(task, random.Random(f"{task.cfg.name}-prompts-{seed}"), n_train + n_test, set(val), n_train + n_test + n_val)
    return PromptSplits(rest[:n_train], rest[n_train:], val)


def _distinct(task: Task, rng: random.Random, want: int, taken: set[str], total: int) -> list[str]:
    """`want` distinct prompts from `rng`'s stream, none of them in `taken`."""
    seen, prompts = set(taken), []
    for _ in range(100 * want):
        p = task.sample_prompt(rng)
        if p not in seen:
            seen.add(p)
            prompts.append(p)
            if len(prompts) == want:
                return prompts
    raise ConfigError(f"task {task.cfg.name} has fewer than {total} distinct prompts; lower task.n_train, task.n_eval or task.n_val")


def _dataset_splits(task, seed: int) -> PromptSplits:
    train, held_out = task.prompts("train"), task.prompts("test")
    n_train, n_test, n_val = task.cfg.n_train, task.cfg.n_eval, task.cfg.n_val
    if len(train) < n_train or len(held_out) < n_test + n_val:
        raise ConfigError(
            f"task {task.cfg.name}: its data set has {len(train)} distinct train prompts and {len(held_out)} test prompts, fewer than "
            f"task.n_train={n_train} and task.n_eval + task.n_val = {n_test + n_val}; lower them"
        )
    random.Random(f"{task.cfg.name}-validation").shuffle(held_out)  # the one split of the held-out pool
    val, test_pool = held_out[:n_val], held_out[n_val:]
    rng = random.Random(f"{task.cfg.name}-prompts-{seed}")
    rng.shuffle(train)
    rng.shuffle(test_pool)
    return PromptSplits(train[:n_train], test_pool[:n_test], val)


def chat_prompts(splits: PromptSplits, tokenizer) -> PromptSplits:
    """Each prompt as the chat template renders one user turn, ready for the assistant's answer: the text every
    sampler, scorer and judge then reads as the prompt."""

    def render(prompt: str) -> str:
        return tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True)

    return PromptSplits(*([render(p) for p in split] for split in splits))


from bench.tasks import arithmetic, hub_data, positive_sentiment, running_sum, sentiment  # noqa: E402,F401  (they register themselves)
