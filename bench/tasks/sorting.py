"""Partial-credit task: sort a list of digits. Reward = fraction of positions right.

    prompt      "sort 3 1 4 1 5 :"     completion "1 1 3 4 5"

The reward divides by the longer of target and completion, so padding an answer
with extra tokens costs as much as leaving positions out.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from bench.config import ConfigError, TaskConfig
from bench.tasks import register_task


@dataclass
class SortingConfig(TaskConfig):
    min_len: int = 3
    max_len: int = 6
    """Lists have min_len..max_len digits; max_new_tokens must leave room for EOS after max_len."""

    def __post_init__(self) -> None:
        if not 1 <= self.min_len <= self.max_len < self.max_new_tokens:
            raise ConfigError(
                f"task sorting needs 1 <= min_len ({self.min_len}) <= max_len ({self.max_len}) < max_new_tokens ({self.max_new_tokens})"
            )


class Sorting:
    has_checker = True
    best_gold_reward = 1.0
    vocabulary = list("0123456789") + ["sort", ":"]

    def __init__(self, cfg: SortingConfig):
        self.cfg = cfg

    def sample_prompt(self, rng: random.Random) -> str:
        n = rng.randint(self.cfg.min_len, self.cfg.max_len)
        return "sort " + " ".join(str(rng.randrange(10)) for _ in range(n)) + " :"

    def _target(self, prompt: str) -> list[str]:
        return sorted(prompt.removeprefix("sort").removesuffix(":").split())

    def demonstration(self, prompt: str, rng: random.Random) -> str:
        return " ".join(self._target(prompt))

    def correct(self, prompt: str, completion: str) -> bool:
        return completion.split() == self._target(prompt)

    def gold_reward(self, prompt: str, completion: str) -> float:
        target, got = self._target(prompt), completion.split()
        return sum(t == g for t, g in zip(target, got)) / max(len(target), len(got))


register_task("sorting", SortingConfig, Sorting)
