"""PPO, GRPO and DPO through the runner: every trainable weight moves, memory and options behave."""

import glob
import json

import pytest
import torch
from safetensors.torch import load_file

from bench import rundir
from bench.config import ConfigError, to_object
from bench.optim import adamw
from bench.runner.build import preflight
from tests.conftest import TINY_ARITHMETIC, compose_config


def _policy_tensors(path: str) -> dict[str, torch.Tensor]:
    return load_file(glob.glob(f"{path}/model.safetensors")[0])


@pytest.mark.parametrize("algo", ["ppo", "grpo", "dpo", "rloo", "reinforce_pp"])
def test_every_trainable_weight_changes(run_tiny, shared_cache, algo):
    """Two optimiser steps (a steps budget; PPO, RLOO and REINFORCE++ take several in one iteration): every weight in the
    final checkpoint moved."""
    summary, run_dir = run_tiny(f"algo={algo}", "task=sentiment", "budget=steps", "budget.amount=2")
    assert summary["status"] == "finished", summary.get("error")
    sft = _policy_tensors(f"{shared_cache}/sft/{summary['stages']['sft']['hash']}")
    trained = rundir.read_checkpoint(run_dir / "checkpoint.pt")["trainer"]
    assert sft.keys() == trained["policy"].keys()
    unchanged = [k for k, v in sft.items() if torch.equal(v, trained["policy"][k])]
    assert not unchanged, f"{algo} left these weights untouched: {unchanged}"
    if algo == "ppo":
        rm = _policy_tensors(f"{shared_cache}/reward_model/{summary['stages']['reward_model']['hash']}")
        critic = {k.removeprefix("backbone."): v for k, v in trained["critic"].items() if k.startswith("backbone.")}
        assert rm.keys() == critic.keys()
        assert all(not torch.equal(rm[k], critic[k]) for k in rm), "the critic did not train"


def test_adamw_takes_the_per_parameter_loops_steps_bit_for_bit():
    """The shared AdamW's multi-tensor (foreach) step is a speed lever only: on the CPU, 20 steps on random gradients
    leave the very weights the per-parameter loop leaves (AdamW's fused kernel does not: it differs by ~4e-9)."""
    torch.manual_seed(0)
    models = [torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.Linear(32, 8)) for _ in range(2)]
    models[1].load_state_dict(models[0].state_dict())
    start = [p.detach().clone() for p in models[0].parameters()]
    shared, loop = adamw(models[0], 1e-2), torch.optim.AdamW(models[1].parameters(), lr=1e-2, weight_decay=0.0, foreach=False)
    for _ in range(20):
        for p, q in zip(*(m.parameters() for m in models)):
            p.grad = torch.randn_like(p)
            q.grad = p.grad.clone()
        shared.step()
        loop.step()
    assert shared.defaults["foreach"] is True
    assert all(torch.equal(p, q) for p, q in zip(*(m.parameters() for m in models)))
    assert not any(torch.equal(p, p0) for p, p0 in zip(models[0].parameters(), start))


def test_memory_orders_ppo_above_grpo_above_dpo(run_tiny):
    """PPO holds a critic with gradients and optimiser state; GRPO the reward model; DPO only policy + reference."""
    totals = {}
    for algo in ("ppo", "grpo", "dpo"):
        summary, _ = run_tiny(f"algo={algo}", "task=sentiment", "budget.amount=5e9", name=algo)
        model_bytes = {k: v for k, v in summary["memory"].items() if k.endswith(("param_bytes", "grad_bytes", "optimizer_bytes"))}
        totals[algo] = sum(model_bytes.values())
        models = {k.split("/")[1] for k in model_bytes}
        assert models == {"ppo": {"policy", "critic", "reference", "reward_model"}, "grpo": {"policy", "reference", "reward_model"},
                          "dpo": {"policy", "reference"}}[algo]  # fmt: skip
    assert totals["ppo"] > totals["grpo"] > totals["dpo"]


def test_memory_lists_the_models_each_new_algorithm_runs(run_tiny):
    """RLOO and REINFORCE++ hold no critic; best-of-N trains nothing (no gradients, no optimiser state); on the
    verifiable task with reward=auto RLOO and REINFORCE++ run no reward model, while best-of-N still picks with it
    (its `selector=reward` picks with the check and runs none)."""
    expected = {"rloo": {"policy", "reference", "reward_model"}, "reinforce_pp": {"policy", "reference", "reward_model"},
                "best_of_n": {"reference", "reward_model"}}  # fmt: skip
    for algo, models in expected.items():
        summary, _ = run_tiny(f"algo={algo}", "task=sentiment", "budget.amount=5e9", name=algo)
        assert {k.split("/")[1] for k in summary["memory"] if k.endswith("param_bytes")} == models
        assert sum(v for k, v in summary["memory"].items() if k.endswith(("grad_bytes", "optimizer_bytes")) and "/policy/" not in k) == 0
        verifiable, _ = run_tiny(f"algo={algo}", *TINY_ARITHMETIC, "budget.amount=5e9", name=f"{algo}_arithmetic")
        assert any("/reward_model/" in k for k in verifiable["memory"]) == (algo == "best_of_n")
    checked, _ = run_tiny("algo=best_of_n", "algo.selector=reward", *TINY_ARITHMETIC, "budget.amount=5e9", name="best_of_n_checked")
    assert not any("/reward_model/" in k for k in checked["memory"])
    assert checked["final"]["eval/accuracy"] > verifiable["final"]["eval/accuracy"]  # the answer key picks better than the proxy


def test_grpo_without_kl_skips_the_reference(run_tiny):
    summary, run_dir = run_tiny("algo=grpo", "algo.beta=0", *TINY_ARITHMETIC, "budget.amount=5e9")
    assert summary["status"] == "finished", summary.get("error")
    assert not any("/reference/" in k for k in summary["memory"])
    assert "compute/flops_by_model/reference" not in summary["final"]
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert all("train/kl" not in r for r in rows)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["algo=grpo", "algo.group_size=1"], "algo.group_size must be >= 2"),
        (["algo=ppo", "algo.batch_size=12", "algo.minibatches=5"], "algo.batch_size 12 is not divisible by algo.minibatches 5"),
        (["algo=grpo", "task=sentiment", "reward=verifiable"], "reward=verifiable but task sentiment has no checker"),
        (["reward=oracle"], "oracle"),
        (["algo=rloo", "algo.group_size=1"], "algo.group_size must be >= 2"),
        (["algo=rloo", "algo.prompts_per_step=10", "algo.minibatches=4"], "not divisible by algo.minibatches 4"),
        (["algo=reinforce_pp", "algo.group_size=3"], "algo.batch_size 64 is not a multiple of algo.group_size 3"),
        (["algo=best_of_n", "algo.candidates_per_step=0"], "must be >= 1"),
    ],
)
def test_bad_algorithm_options_are_rejected_before_work(overrides, message):
    with pytest.raises((ConfigError, Exception), match=message):
        preflight(to_object(compose_config(*overrides)))
