"""Real-text preference task, after the DPO paper's IMDb experiment: write about an everyday topic, positively.

    prompt      "Write one sentence about your morning coffee."   (a user turn, through the chat template)
    completion  "My morning coffee is a warm, wonderful start to the day."

Gold reward (the judge; never shown to a trainer): VADER's compound sentiment score of the completion
(Hutto & Gilbert 2014, the `vaderSentiment` lexicon, in [-1, 1]) minus a length term,

    r = compound(completion) - length_penalty * max(0, words - max_words) / max_words

so a learned reward model, which sees only pairwise labels, can learn "positive words are good" and
miss the length limit: proxy and gold part ways as on the built-in sentiment task. The best
achievable gold reward is 1 (compound near 1 within `max_words`).

For a pretrained instruct model (`model=smollm2 sft.steps=0`) the demonstrations are unused; with
SFT they are plain neutral sentences about the topic, so SFT teaches the format, not the sentiment.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import cached_property

from bench.config import ConfigError, TaskConfig
from bench.tasks import register_task

TOPICS = [
    "your morning coffee", "a walk in the park", "the weather today", "your neighbourhood", "a rainy afternoon",
    "cooking dinner", "a train journey", "your favourite chair", "the weekend", "a bowl of soup", "doing laundry",
    "a city bus", "an old bicycle", "a library visit", "gardening", "a cup of tea", "your commute", "a Monday morning",
    "the first snow", "a grocery store", "an evening run", "a phone call with a friend", "baking bread", "a quiet evening",
    "a crowded market", "a long queue", "a birthday party", "a museum", "a picnic", "a thunderstorm", "a new notebook",
    "a family dinner", "a sunny balcony", "washing the dishes", "a school playground", "a bookshop", "a football match",
    "an early flight", "a lazy Sunday", "a street musician", "a fresh apple", "a winter coat", "a village fair",
    "a power cut", "a hot summer day", "a board game", "a paper map", "a train station", "the sound of rain",
    "a cat on a windowsill", "a walk by the river", "a broken umbrella", "a tidy desk", "a slow internet connection",
    "a cinema trip", "a haircut", "a farmers' market", "a ferry ride", "a wooden table", "an alarm clock",
]  # fmt: skip
INSTRUCTIONS = [
    "Write one sentence about {}.", "Describe {} in one sentence.", "Say something about {}.", "Tell me about {} in a sentence.",
    "Write a short line about {}.", "What do you think of {}? Answer in one sentence.",
]  # fmt: skip
NEUTRAL = ["{} is part of many people's days.", "There is a lot to say about {}.", "People often talk about {}.",
           "{} happens in many places."]  # fmt: skip


@dataclass
class PositiveSentimentConfig(TaskConfig):
    max_new_tokens: int = 32
    max_words: int = 20
    """Words beyond this cost `length_penalty / max_words` each."""
    length_penalty: float = 1.0

    def __post_init__(self) -> None:
        if self.max_words < 1:
            raise ConfigError(f"task.max_words must be >= 1, got {self.max_words}")


class PositiveSentiment:
    has_checker = False
    chat = True
    vocabulary: list[str] = []  # real text: a pretrained tokenizer only
    best_gold_reward = 1.0

    def __init__(self, cfg: PositiveSentimentConfig):
        self.cfg = cfg

    @cached_property
    def analyzer(self):
        try:
            from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer
        except ImportError as e:
            raise ConfigError("task positive_sentiment is judged by VADER: pip install 'rlhf-bench[real]'") from e
        return SentimentIntensityAnalyzer()

    def sample_prompt(self, rng: random.Random) -> str:
        return rng.choice(INSTRUCTIONS).format(rng.choice(TOPICS))

    def demonstration(self, prompt: str, rng: random.Random) -> str:
        topic = next(t for t in TOPICS if t in prompt)
        sentence = rng.choice(NEUTRAL).format(topic)
        return sentence[0].upper() + sentence[1:]

    def correct(self, prompt: str, completion: str) -> bool:
        raise NotImplementedError("positive_sentiment has no exact check (has_checker is False)")

    def gold_reward(self, prompt: str, completion: str) -> float:
        words = len(completion.split())
        excess = max(0, words - self.cfg.max_words) / self.cfg.max_words
        return self.analyzer.polarity_scores(completion)["compound"] - self.cfg.length_penalty * excess


register_task("positive_sentiment", PositiveSentimentConfig, PositiveSentiment)
