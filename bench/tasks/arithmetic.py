"""Verifiable task: add two numbers. Reward 1 if the sum is exactly right, else 0 (GRPO's home ground).

    prompt      "4 7 + 3 8 ="     completion "5 8"   (reversed: 85)

The sum is written least significant digit first (`reversed: true`, the default), the
order in which carries are computed, so a small transformer can learn it left to right;
`reversed=false` writes it the usual way, a much harder task for the same model.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from bench.config import TaskConfig
from bench.tasks import register_task


@dataclass
class ArithmeticConfig(TaskConfig):
    digits: int = 2
    """Digits per operand; the sum has up to digits + 1."""
    reversed: bool = True
    """Write the sum least significant digit first."""


class Arithmetic:
    has_checker = True
    chat = False
    best_gold_reward = 1.0
    vocabulary = list("0123456789+=")

    def __init__(self, cfg: ArithmeticConfig):
        self.cfg = cfg

    def sample_prompt(self, rng: random.Random) -> str:
        a, b = (rng.randrange(10**self.cfg.digits) for _ in range(2))
        return f"{' '.join(str(a))} + {' '.join(str(b))} ="

    def _answer(self, prompt: str) -> str:
        a, b = prompt.removesuffix("=").split("+")
        digits = str(int(a.replace(" ", "")) + int(b.replace(" ", "")))
        return " ".join(digits[::-1] if self.cfg.reversed else digits)

    def demonstration(self, prompt: str, rng: random.Random) -> str:
        return self._answer(prompt)

    def correct(self, prompt: str, completion: str) -> bool:
        return completion.split() == self._answer(prompt).split()

    def gold_reward(self, prompt: str, completion: str) -> float:
        return float(self.correct(prompt, completion))


register_task("arithmetic", ArithmeticConfig, Arithmetic)
