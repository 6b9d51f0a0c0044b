"""Tasks: gold rewards and checks against values worked out by hand; deterministic splits."""

import pytest

from bench.config import ConfigError
from bench.tasks import build_task, prompt_splits
from bench.tasks.arithmetic import ArithmeticConfig
from bench.tasks.running_sum import RunningSumConfig
from bench.tasks.sentiment import SentimentConfig


def test_running_sum_partial_credit():
    """Running sums of 3 9 4 are 3, 12, 16 -> "3 2 6": all right 1; "3 2 7" 2/3; an extra digit divides by 4 -> 3/4; "3" 1/3."""
    task = build_task(RunningSumConfig(name="running_sum", min_len=3))
    prompt = "sum 3 9 4 :"
    assert [task.gold_reward(prompt, c) for c in ["3 2 6", "3 2 7", "3 2 6 0", "3", ""]] == pytest.approx([1, 2 / 3, 3 / 4, 1 / 3, 0])
    assert task.correct(prompt, "3 2 6") and not task.correct(prompt, "3 2 6 0")
    assert task.demonstration("sum 9 9 9 9 :", None) == "9 8 7 6"


def test_arithmetic_exact_answer():
    """47 + 38 = 85, written "5 8" (reversed) or "8 5"; 99 + 2 = 101 reads the same both ways."""
    task = build_task(ArithmeticConfig(name="arithmetic"))
    assert task.gold_reward("4 7 + 3 8 =", "5 8") == 1.0
    assert task.gold_reward("4 7 + 3 8 =", "8 5") == 0.0
    assert task.gold_reward("9 9 + 0 2 =", "1 0 1") == 1.0
    assert task.demonstration("0 5 + 1 5 =", None) == "0 2"
    plain = build_task(ArithmeticConfig(name="arithmetic", reversed=False))
    assert plain.gold_reward("4 7 + 3 8 =", "8 5") == 1.0 and plain.demonstration("0 5 + 1 5 =", None) == "2 0"


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


@pytest.mark.parametrize("cfg", [ArithmeticConfig(name="arithmetic"), SentimentConfig(name="sentiment"), RunningSumConfig(name="running_sum")])
def test_splits_are_disjoint_and_fixed_by_the_stage_seed(cfg):
    task = build_task(cfg)
    train, test, val = prompt_splits(task, seed=0)
    assert (len(train), len(test), len(val)) == (cfg.n_train, cfg.n_eval, cfg.n_val)
    assert not set(train) & set(test) and not set(train) & set(val) and not set(test) & set(val)
    assert prompt_splits(task, seed=0) == (train, test, val)
    other = prompt_splits(task, seed=1)
    assert other.train != train and other.test != test and other.val == val
    assert all(w in task.vocabulary for p in train[:50] for w in p.split())


@pytest.mark.parametrize("cfg", [ArithmeticConfig(name="arithmetic"), SentimentConfig(name="sentiment")])
def test_no_validation_prompt_of_one_stage_seed_is_a_test_prompt_of_another(cfg):
    """Tuning chooses on one stage seed's validation prompts and reports other stage seeds' test prompts: the two
    must never meet (drawn per stage seed from one pool, 8 of arithmetic's 128 validation prompts did)."""
    task = build_task(cfg)
    splits = [prompt_splits(task, seed) for seed in range(5)]
    validation = set().union(*(s.val for s in splits))
    assert not validation & set().union(*(s.test for s in splits))
    assert not validation & set().union(*(s.train for s in splits))


def test_too_few_distinct_prompts_is_a_clear_error():
    task = build_task(ArithmeticConfig(name="arithmetic", digits=1, n_train=70, n_eval=20, n_val=20))
    with pytest.raises(ConfigError, match="fewer than 110 distinct prompts"):
        prompt_splits(task, seed=0)


@pytest.mark.parametrize("key", ["n_train", "n_eval", "n_val"])
def test_an_empty_prompt_set_is_refused(key):
    with pytest.raises(ConfigError, match=f"task.{key} must be >= 1, got 0"):
        prompt_splits(build_task(SentimentConfig(name="sentiment", **{key: 0})), seed=0)


def test_unknown_task_lists_the_valid_ones():
    with pytest.raises(ConfigError, match="unknown task 'poetry'; available: arithmetic, gsm8k, hh_rlhf, positive_sentiment, running_sum, sentiment, tldr, ultrafeedback$"):
        build_task(SentimentConfig(name="poetry"))


def test_the_sft_stage_is_keyed_by_the_train_prompts_it_trains_on():
    """A generated task's train prompts skip the validation prompts, so they change with task.n_val (1 983 of 2 000
    differ between n_val 32 and 128 on sentiment): two stage-cache entries, not one built on other prompts."""
    from bench.cache import stage_key
    from bench.config import to_object
    from bench.stages import sft_spec
    from tests.conftest import compose_config

    keys = {}
    for n_val in (32, 128):
        cfg = to_object(compose_config(f"task.n_val={n_val}"))
        train = prompt_splits(build_task(cfg.task), cfg.stage_seed).train
        keys[n_val] = (train, stage_key(sft_spec(cfg, train)))
    assert keys[32][0] != keys[128][0] and keys[32][1] != keys[128][1]
    cfg = to_object(compose_config("task.n_eval=100"))  # the test prompts come after the train prompts: same key
    assert stage_key(sft_spec(cfg, prompt_splits(build_task(cfg.task), 0).train)) == stage_key(sft_spec(to_object(compose_config()), keys[128][0]))
