"""Tasks: gold rewards and checks against values worked out by hand; deterministic splits."""

import pytest

from bench.config import ConfigError
from bench.tasks import build_task, prompt_splits
from bench.tasks.arithmetic import ArithmeticConfig
from bench.tasks.sentiment import SentimentConfig
from bench.tasks.sorting import SortingConfig


def test_sorting_partial_credit():
    """Target of "3 1 2" is "1 2 3": 3/3 right; "1 3 2" 1/3; an extra token divides by 4 -> 3/4; one token 1/3."""
    task = build_task(SortingConfig(name="sorting"))
    prompt = "sort 3 1 2 :"
    assert [task.gold_reward(prompt, c) for c in ["1 2 3", "1 3 2", "1 2 3 4", "1", ""]] == pytest.approx([1, 1 / 3, 3 / 4, 1 / 3, 0])
    assert task.correct(prompt, "1 2 3") and not task.correct(prompt, "1 2 3 4")


def test_arithmetic_exact_answer():
    task = build_task(ArithmeticConfig(name="arithmetic"))
    assert task.gold_reward("4 7 + 3 8 =", "8 5") == 1.0
    assert task.gold_reward("4 7 + 3 8 =", "8 6") == 0.0
    assert task.gold_reward("9 9 + 0 2 =", "1 0 1") == 1.0
    assert task.demonstration("0 5 + 0 5 =", None) == "1 0"


def test_sentiment_gold_reward_by_hand():
    """L* = 5, penalty 0.5 per word off L*, repeats decay by 0.5.

    "excellent great good fun nice": (1 + .8 + .6 + .5 + .4) / 5 = 0.66
    "excellent excellent":           (1 + .5 - 0.5·3) / 5 = 0
    "bad the movie was it":          -0.6 / 5 = -0.12
    best: five distinct best words   (1 + .9 + .8 + .8 + .7) / 5 = 0.84
    """
    task = build_task(SentimentConfig(name="sentiment"))
    assert task.gold_reward("review it :", "excellent great good fun nice") == pytest.approx(0.66)
    assert task.gold_reward("review it :", "excellent excellent") == pytest.approx(0.0)
    assert task.gold_reward("review it :", "bad the movie was it") == pytest.approx(-0.12)
    assert task.best_gold_reward == pytest.approx(0.84)


@pytest.mark.parametrize("cfg", [ArithmeticConfig(name="arithmetic"), SentimentConfig(name="sentiment"), SortingConfig(name="sorting")])
def test_splits_are_disjoint_and_deterministic(cfg):
    task = build_task(cfg)
    train, evaluation = prompt_splits(task, seed=0)
    assert (len(train), len(evaluation)) == (cfg.n_train, cfg.n_eval)
    assert not set(train) & set(evaluation)
    assert prompt_splits(task, seed=0) == (train, evaluation)
    assert prompt_splits(task, seed=1)[0] != train
    assert all(w in task.vocabulary for p in train[:50] for w in p.split())


def test_too_few_distinct_prompts_is_a_clear_error():
    task = build_task(ArithmeticConfig(name="arithmetic", digits=1, n_train=90, n_eval=20))
    with pytest.raises(ConfigError, match="fewer than 110 distinct prompts"):
        prompt_splits(task, seed=0)


def test_unknown_task_lists_the_valid_ones():
    with pytest.raises(ConfigError, match="unknown task 'poetry'; available: arithmetic, sentiment, sorting"):
        build_task(SentimentConfig(name="poetry"))
