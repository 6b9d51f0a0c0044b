"""End to end on the tiny preset: SFT -> preferences -> reward model -> DPO -> evaluation -> files."""

import json
import logging
import math

import datasets
import pytest

from bench.config import ModelConfig
from bench.models import build_policy, build_tokenizer
from bench.rundir import objective
from bench.tasks.arithmetic import Arithmetic, ArithmeticConfig
from tests.conftest import TINY_ARITHMETIC

SUMMARY_KEYS = {"schema", "status", "algo", "task", "model", "seed", "versions", "git_commit", "stages", "sft", "final", "memory", "perf", "wall_s"}
EVAL_KEYS = {"eval/gold_reward", "eval/proxy_reward", "eval/kl_to_ref", "eval/win_rate_vs_sft", "eval/length"}


def _rows(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("task", ["sentiment", "arithmetic", "running_sum"])
def test_dpo_run_writes_every_file_and_key(run_tiny, task):
    summary, run_dir = run_tiny("algo=dpo", *(TINY_ARITHMETIC if task == "arithmetic" else [f"task={task}"]))
    assert summary["status"] == "finished", summary.get("error")
    assert {"config.json", "metrics.jsonl", "summary.json", "checkpoint.pt"} <= {p.name for p in run_dir.iterdir()}
    assert json.loads((run_dir / "summary.json").read_text()) == json.loads(json.dumps(summary, default=str))
    assert SUMMARY_KEYS <= summary.keys()
    assert set(summary["stages"]) == {"sft", "preferences", "reward_model"}
    assert all(len(s["hash"]) == 16 for s in summary["stages"].values())
    assert 0 < summary["stages"]["reward_model"]["heldout_accuracy"] <= 1

    eval_keys = EVAL_KEYS | ({"eval/accuracy"} if task != "sentiment" else set())
    assert eval_keys <= summary["final"].keys()
    assert {k.replace("eval/", "val/") for k in eval_keys} <= summary["final"].keys()  # the validation prompts, scored alike
    # DPO's epochs over its pairs: the pairs it took (batch 32 a step) over the pairs the stage kept
    steps, pairs = summary["last_eval"]["compute/steps"], summary["stages"]["preferences"]["pairs"]
    assert summary["data"] == {"examples": pairs, "epochs": pytest.approx(32 * steps / pairs)}
    assert {"memory/policy/param_bytes", "memory/policy/optimizer_bytes", "memory/reference/param_bytes", "memory/peak_bytes/update"} <= summary["memory"].keys()
    assert summary["memory"]["memory/reference/grad_bytes"] == 0  # frozen

    rows = _rows(run_dir)
    assert all({"compute/flops", "compute/seconds", "compute/samples"} <= r.keys() for r in rows)
    evals = [r for r in rows if "eval/gold_reward" in r]
    train = [r for r in rows if "train/loss" in r]
    # the SFT point at compute 0, then one per quarter of the budget (the last one at the end)
    assert len(evals) == 5 and evals[0]["compute/flops"] == 0
    assert evals[0]["eval/kl_to_ref"] == 0 and evals[0]["eval/win_rate_vs_sft"] == 0.5
    fractions = [r["compute/budget_fraction"] for r in evals[1:]]
    assert [f >= q for f, q in zip(fractions, [0.25, 0.5, 0.75, 1.0])] == [True] * 4
    # the budget stops the run on the step that spends it, not later
    budget = 2e10
    assert train[-1]["compute/flops"] >= budget > train[-2]["compute/flops"]
    # the last evaluation is after the step that crossed the budget; the final row is read at the budget itself
    assert summary["last_eval"]["compute/flops"] == train[-1]["compute/flops"] == evals[-1]["compute/flops"]
    assert summary["overshoot"] == train[-1]["compute/flops"] / budget - 1 > 0
    assert summary["final"]["compute/flops"] == budget and summary["final"]["compute/budget_fraction"] == 1.0
    before, after = evals[-2], evals[-1]
    w = (budget - before["compute/flops"]) / (after["compute/flops"] - before["compute/flops"])
    for key in EVAL_KEYS | {"compute/samples", "compute/seconds"}:
        assert summary["final"][key] == pytest.approx(before[key] + w * (after[key] - before[key]), rel=1e-12)
    assert {"train/rewards/chosen", "train/rewards/margins", "train/rewards/accuracies", "train/grad_norm", "perf/step_s"} <= train[0].keys()
    assert [r["compute/steps"] for r in train] == list(range(1, len(train) + 1))


@pytest.mark.parametrize("task, metric", [("sentiment", "val/gold_reward"), ("arithmetic", "val/accuracy")])
def test_the_objective_is_the_validation_score_at_the_budget(run_tiny, task, metric):
    summary, _ = run_tiny("algo=dpo", *(TINY_ARITHMETIC if task == "arithmetic" else [f"task={task}"]))
    assert summary["objective"] == metric
    assert objective(summary) == summary["final"][metric]
    assert math.isnan(objective(summary | {"status": "diverged"}))


def test_dpo_beats_sft_on_the_preference_task(run_tiny):
    summary, _ = run_tiny("algo=dpo", "task=sentiment")
    assert summary["final"]["eval/win_rate_vs_sft"] > 0.5
    assert summary["final"]["eval/gold_reward"] > summary["sft"]["eval/gold_reward"]


def test_stages_are_reused_across_seeds_and_rebuilt_when_their_config_changes(run_tiny, tmp_path, caplog):
    cache = tmp_path / "cache"
    with caplog.at_level(logging.INFO, logger="bench.cache"):
        first, _ = run_tiny("task=running_sum", name="a", cache_dir=cache)
        caplog.clear()
        again, _ = run_tiny("task=running_sum", "seed=1", "algo.beta=0.5", "budget.amount=1e10", name="b", cache_dir=cache)
        hits = [r.getMessage() for r in caplog.records if "cache hit" in r.getMessage()]
        caplog.clear()
        other_sft, _ = run_tiny("task=running_sum", "sft.steps=120", name="c", cache_dir=cache)
        misses = [r.getMessage() for r in caplog.records if "cache miss" in r.getMessage()]
    hashes = lambda s: {k: v["hash"] for k, v in s["stages"].items()}  # noqa: E731
    assert hashes(first) == hashes(again)
    assert len(hits) == 3  # sft, preferences, reward model: all read, none rebuilt
    assert all(hashes(other_sft)[k] != hashes(first)[k] for k in hashes(first))
    assert len(misses) == 3  # a new SFT invalidates what was built from it


def test_wandb_offline_run_is_written(run_tiny):
    summary, run_dir = run_tiny("task=running_sum", "logger.wandb_mode=offline", "budget.amount=5e9")
    assert summary["status"] == "finished"
    offline = list((run_dir / "wandb").glob("offline-run-*"))
    assert len(offline) == 1 and list(offline[0].glob("*.wandb"))


def test_hub_model_and_hub_preference_paths_load_local_copies(run_tiny, tmp_path):
    """The hub paths (`from_pretrained` by name, a preference data set) on local files of the same shape."""
    preset = ModelConfig(preset="tiny")
    tokenizer = build_tokenizer(preset, Arithmetic(ArithmeticConfig(name="arithmetic")).vocabulary)
    build_policy(preset, tokenizer).save_pretrained(tmp_path / "hub-model")
    tokenizer.save_pretrained(tmp_path / "hub-model")
    pairs = {"prompt": ["1 2 + 3 4 =", "5 0 + 0 5 ="] * 40, "chosen": ["4 6", "5 5"] * 40, "rejected": ["4 7", "5 0"] * 40}
    datasets.Dataset.from_dict(pairs).save_to_disk(tmp_path / "hub-pairs")
    summary, _ = run_tiny(
        "task=arithmetic", "model=hub", f"model.name={tmp_path / 'hub-model'}", f"prefs.dataset={tmp_path / 'hub-pairs'}",
        "budget.amount=5e9", cache_dir=tmp_path / "cache",
    )  # fmt: skip
    assert summary["status"] == "finished", summary.get("error")
    assert summary["model"] == str(tmp_path / "hub-model")
    assert summary["stages"]["preferences"]["pairs"] == 80
