"""Run identity: a finished run is reused only for the same result-changing config (issue 9, point 8)."""

import json
import subprocess
import sys

import pytest

from bench import rundir
from bench.runner.reuse import RunDirTaken
from tests.conftest import TINY, tiny_config


def test_identity_ignores_logging_and_paths_but_not_a_hyper_parameter(tmp_path):
    _, base = tiny_config(tmp_path / "a", "algo=dpo")
    _, moved = tiny_config(tmp_path / "b", "algo=dpo", "logger.wandb_mode=offline", "logger.project=x", "checkpoint_every=0.5", "resume=false",
                           "eval.log_samples=3")  # fmt: skip
    _, beta = tiny_config(tmp_path / "a", "algo=dpo", "algo.beta=0.5")
    _, seed = tiny_config(tmp_path / "a", "algo=dpo", "seed=1")
    assert rundir.identity(base) == rundir.identity(moved)
    assert rundir.identity(base) != rundir.identity(beta)
    assert rundir.identity(base) != rundir.identity(seed) and rundir.group(base) == rundir.group(seed)
    assert rundir.group(base) != rundir.group(beta)
    assert rundir.settings(beta)["algo.beta"] == 0.5 and "seed" not in rundir.settings(beta)
    _, other_eval = tiny_config(tmp_path / "a", "algo=dpo", "eval.batch_size=32")  # the same eval.*, but one that can change bits
    assert rundir.identity(other_eval) != rundir.identity(base)


def test_a_finished_run_is_reused_only_under_the_same_identity(run_tiny, caplog):
    first, run_dir = run_tiny("algo=dpo", "budget.amount=5e9", name="run")
    rows = (run_dir / "metrics.jsonl").read_text()
    again, _ = run_tiny("algo=dpo", "budget.amount=5e9", "logger.project=elsewhere", name="run")  # logging is not identity
    assert again == first and (run_dir / "metrics.jsonl").read_text() == rows
    with pytest.raises(RunDirTaken, match="holds a run of another configuration"):
        run_tiny("algo=dpo", "algo.beta=0.5", "budget.amount=5e9", name="run")
    assert json.loads((run_dir / "summary.json").read_text()) == json.loads(json.dumps(first))  # nothing lost
    # the same configuration computed by other code (or on another device type) is not reused either
    summary = json.loads((run_dir / "summary.json").read_text())
    (run_dir / "summary.json").write_text(json.dumps(summary | {"execution": {"result_version": 0, "device": "cpu"}}))
    with pytest.raises(RunDirTaken, match="computed under"):
        run_tiny("algo=dpo", "budget.amount=5e9", name="run")


def test_a_killed_run_of_another_configuration_is_not_overwritten(run_tiny):
    _, run_dir = run_tiny("algo=dpo", "budget.amount=5e9", name="run")
    (run_dir / "summary.json").unlink()  # as if killed: config, metrics and a checkpoint, no summary
    with pytest.raises(RunDirTaken, match="holds a run of another configuration"):
        run_tiny("algo=dpo", "algo.lr=1e-3", "budget.amount=5e9", name="run")
    assert (run_dir / "checkpoint.pt").exists() and (run_dir / "metrics.jsonl").read_text()


def test_rerunning_a_sweep_with_another_beta_runs_it_beside_the_first(tmp_path, shared_cache):
    """The β = 0.05 run stays as it was; β = 0.5 gets its own directory and its own numbers, never the old ones."""
    sweep = tmp_path / "sweep"

    def launch(beta):
        cmd = [sys.executable, "-m", "bench.app", *TINY, "algo=dpo", f"algo.beta={beta}", "stage_seed=0", "seed=0",
               "budget.amount=5e9", f"cache_dir={shared_cache}", f"hydra.sweep.dir={sweep}"]  # fmt: skip
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout + done.stderr

    launch(0.05)
    (first,) = sweep.glob("dpo_*/summary.json")
    before = first.read_text()
    launch(0.5)
    summaries = {json.loads(p.read_text())["settings"]["algo.beta"]: json.loads(p.read_text()) for p in sweep.glob("dpo_*/summary.json")}
    assert set(summaries) == {0.05, 0.5}
    assert first.read_text() == before
    assert summaries[0.5]["final"]["eval/gold_reward"] != summaries[0.05]["final"]["eval/gold_reward"]
    assert "already finished" in launch(0.5)  # the same identity again: reused, not redone
