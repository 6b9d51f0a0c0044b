"""Partial-credit task: running sums mod 10. Reward = fraction of positions right.

    prompt      "sum 3 9 4 7 :"     completion "3 2 6 3"     (3, 3+9=12, 12+4=16, 16+7=23; last digits)

Each output digit depends on the previous one, so errors compound along the sequence
and a small model gets partway: the room between SFT and a perfect policy is partial
credit. The reward divides by the longer of target and completion, so padding an
answer with extra digits costs as much as leaving positions out.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from itertools import accumulate

from bench.config import ConfigError, TaskConfig
from bench.tasks import register_task


@dataclass
class RunningSumConfig(TaskConfig):
    min_len: int = 4
    max_len: int = 7
    """Inputs have min_len..max_len digits; max_new_tokens must leave room for EOS after max_len."""

    def __post_init__(self) -> None:
        if not 1 <= self.min_len <= self.max_len < self.max_new_tokens:
            raise ConfigError(
                f"task running_sum needs 1 <= min_len ({self.min_len}) <= max_len ({self.max_len}) < max_new_tokens ({self.max_new_tokens})"
            )


class RunningSum:
    has_checker = True
    chat = False
    best_gold_reward = 1.0
    vocabulary = list("0123456789") + ["sum", ":"]

    def __init__(self, cfg: RunningSumConfig):
        self.cfg = cfg

    def sample_prompt(self, rng: random.Random) -> str:
        n = rng.randint(self.cfg.min_len, self.cfg.max_len)
        return "sum " + " ".join(str(rng.randrange(10)) for _ in range(n)) + " :"

    def _target(self, prompt: str) -> list[str]:
        digits = [int(d) for d in prompt.removeprefix("sum").removesuffix(":").split()]
        return [str(s % 10) for s in accumulate(digits)]

    def demonstration(self, prompt: str, rng: random.Random) -> str:
        return " ".join(self._target(prompt))

    def correct(self, prompt: str, completion: str) -> bool:
        return completion.split() == self._target(prompt)

    def gold_reward(self, prompt: str, completion: str) -> float:
        target, got = self._target(prompt), completion.split()
        return sum(t == g for t, g in zip(target, got)) / max(len(target), len(got))


register_task("running_sum", RunningSumConfig, RunningSum)
