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

    Drawn in that order from one stream, so the train and test prompts do not depend on `n_val`. A task
    read from a data set (`prompts(split)`) gives its train prompts from its train split and its test and
    validation prompts from its test split, each shuffled by the seed."""
    for key in ("n_train", "n_eval", "n_val"):
        if getattr(task.cfg, key) < 1:
            raise ConfigError(f"task.{key} must be >= 1, got {getattr(task.cfg, key)}")
    if hasattr(task, "prompts"):
        return _dataset_splits(task, seed)
    rng = random.Random(f"{task.cfg.name}-prompts-{seed}")
    seen: set[str] = set()
    prompts: list[str] = []
    n_train, n_test = task.cfg.n_train, task.cfg.n_eval
    want = n_train + n_test + task.cfg.n_val
    for _ in range(100 * want):
        p = task.sample_prompt(rng)
        if p not in seen:
            seen.add(p)
            prompts.append(p)
            if len(prompts) == want:
                return PromptSplits(prompts[:n_train], prompts[n_train : n_train + n_test], prompts[n_train + n_test :])
    raise ConfigError(
        f"task {task.cfg.name} has fewer than {want} distinct prompts; lower task.n_train, task.n_eval or task.n_val"
    )

def _dataset_splits(task, seed: int) -> PromptSplits:
    rng = random.Random(f"{task.cfg.name}-prompts-{seed}")
    train, held_out = task.prompts("train"), task.prompts("test")
    rng.shuffle(train)
    rng.shuffle(held_out)
    n_train, n_test, n_val = task.cfg.n_train, task.cfg.n_eval, task.cfg.n_val
    if len(train) < n_train or len(held_out) < n_test + n_val:
        raise ConfigError(
            f"task {task.cfg.name}: its data set has {len(train)} distinct train prompts and {len(held_out)} test prompts, fewer than "
            f"task.n_train={n_train} and task.n_eval + task.n_val = {n_test + n_val}; lower them"
        )
    return PromptSplits(train[:n_train], held_out[:n_test], held_out[n_test : n_test + n_val])


def chat_prompts(splits: PromptSplits, tokenizer) -> PromptSplits:
    """Each prompt as the chat template renders one user turn, ready for the assistant's answer: the text every
    sampler, scorer and judge then reads as the prompt."""

    def render(prompt: str) -> str:
        return tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True)

    return PromptSplits(*([render(p) for p in split] for split in splits))


from bench.tasks import arithmetic, hub_data, positive_sentiment, running_sum, sentiment  # noqa: E402,F401  (they register themselves)
