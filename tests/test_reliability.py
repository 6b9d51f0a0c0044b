"""Reliability: determinism, resume after SIGKILL, divergence, failures, parallel sweeps."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from bench.jobs import job_share
from tests.conftest import TINY

WALL_CLOCK = ("perf/", "memory/", "compute/seconds")


def _rows(run_dir):
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if not k.startswith(WALL_CLOCK)} for r in rows]


@pytest.mark.parametrize("algo", ["ppo", "grpo", "dpo", "rloo", "reinforce_pp", "best_of_n"])
def test_same_config_and_seed_give_identical_metrics(run_tiny, algo):
    first, a = run_tiny(f"algo={algo}", "budget.amount=1e10", name="a")
    second, b = run_tiny(f"algo={algo}", "budget.amount=1e10", name="b")
    assert first["status"] == second["status"] == "finished"
    assert _rows(a) == _rows(b)  # every value, bit for bit
    other, c = run_tiny(f"algo={algo}", "budget.amount=1e10", "seed=1", name="c")
    assert _rows(c) != _rows(a)  # and the seed does matter


def _cli(run_dir, cache, *extra):
    return [sys.executable, "-m", "bench.app", *TINY, "algo=grpo", "stage_seed=0", "seed=0", "budget.amount=1.5e11", "checkpoint_every=0.1",
            f"cache_dir={cache}", f"hydra.sweep.dir={run_dir.parent}", f"hydra.sweep.subdir={run_dir.name}", *extra]  # fmt: skip


def test_a_killed_run_resumes_to_the_same_final_metrics(tmp_path, shared_cache):
    whole, killed = tmp_path / "whole" / "run", tmp_path / "killed" / "run"
    assert subprocess.run(_cli(whole, shared_cache), capture_output=True, timeout=600).returncode == 0

    proc = subprocess.Popen(_cli(killed, shared_cache), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    while not (killed / "checkpoint.pt").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert (killed / "checkpoint.pt").exists() and not (killed / "summary.json").exists(), "the kill came too late to test resume"
    rows_at_kill = len((killed / "metrics.jsonl").read_text().splitlines())

    again = subprocess.run(_cli(killed, shared_cache), capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "resuming" in again.stdout + again.stderr
    resumed, reference = (json.loads((d / "summary.json").read_text()) for d in (killed, whole))
    assert resumed["status"] == "finished" and resumed["resumed_at_iteration"] > 0
    strip = lambda d: {k: v for k, v in d.items() if not k.startswith(WALL_CLOCK)}  # noqa: E731
    assert strip(resumed["final"]) == strip(reference["final"])
    assert _rows(killed) == _rows(whole)  # rows after the checkpoint were dropped and logged again, none twice
    assert rows_at_kill >= 1

    # started again once more, a finished run is skipped, not redone
    skipped = subprocess.run(_cli(killed, shared_cache), capture_output=True, text=True, timeout=600)
    assert "run already finished with this identity" in skipped.stdout + skipped.stderr
    assert json.loads((killed / "summary.json").read_text())["wall_s"] == resumed["wall_s"]


@pytest.mark.parametrize("algo", ["rloo", "reinforce_pp", "best_of_n"])
def test_a_run_stopped_after_a_checkpoint_resumes_to_the_uninterrupted_one(run_tiny, monkeypatch, algo):
    """In process (the SIGKILL test above covers the process side): the run dies right after its first checkpoint,
    leaving it and no summary; started again, it continues from there to the very rows of a run never stopped."""
    from bench import runner

    overrides = (f"algo={algo}", "budget.amount=3e10", "checkpoint_every=0.3", "algo.prompts_per_step=128" if algo == "best_of_n" else "seed=0")
    _, whole = run_tiny(*overrides, name="whole")
    save = runner.save_checkpoint

    def save_then_die(*args):
        save(*args)
        raise SystemExit("killed")

    monkeypatch.setattr(runner, "save_checkpoint", save_then_die)
    with pytest.raises(SystemExit):
        run_tiny(*overrides, name="stopped")
    stopped = whole.parent / "stopped"
    (stopped / "summary.json").unlink()  # a killed run writes none
    monkeypatch.setattr(runner, "save_checkpoint", save)
    resumed, _ = run_tiny(*overrides, name="stopped")
    assert resumed["status"] == "finished" and resumed["resumed_at_iteration"] > 0
    assert _rows(stopped) == _rows(whole)


def test_an_absurd_learning_rate_diverges_and_the_sweep_goes_on(tmp_path, shared_cache):
    sweep = tmp_path / "sweep"
    cmd = [sys.executable, "-m", "bench.app", "-m", *TINY, "algo=dpo", "algo.lr=1e8,5e-4", "stage_seed=0", "seed=0", "budget.amount=5e9",
           f"cache_dir={shared_cache}", f"hydra.sweep.dir={sweep}"]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    by_lr = {s["settings"]["algo.lr"]: s for s in (json.loads(p.read_text()) for p in sweep.glob("dpo_sentiment_*/summary.json"))}
    diverged, fine = by_lr[1e8], by_lr[5e-4]
    assert diverged["status"] == "diverged"
    assert diverged["diverged"]["metric"].startswith("train/") and diverged["diverged"]["step"] >= 1
    assert diverged["diverged"]["value"] in ("nan", "inf", "-inf")
    assert fine["status"] == "finished"


def test_an_exception_inside_a_run_is_a_failed_summary_with_its_traceback(run_tiny, monkeypatch):
    from bench.algos import grpo

    def explode(self):
        raise RuntimeError("boom in step")

    monkeypatch.setattr(grpo.GRPO, "step", explode)
    summary, run_dir = run_tiny("algo=grpo", "budget.amount=5e9")
    assert summary["status"] == "failed"
    assert "RuntimeError: boom in step" in summary["error"] and "Traceback" in summary["error"]
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "failed"


@pytest.mark.parametrize("launcher", ["local_jobs", "submitit_local"])
def test_parallel_jobs_build_each_stage_once(launcher, tmp_path):
    """Two jobs need the same uncached stages at the same moment (joblib workers, or submitit's local executor, the
    SLURM launcher's stand-in): one builds, the other waits and reads; each writes its own run directory."""
    sweep, cache = tmp_path / "sweep", tmp_path / "cache"
    cmd = [sys.executable, "-m", "bench.app", "-m", *TINY, "algo=dpo", "stage_seed=0", "seed=0,1", "budget.amount=5e9",
           f"hydra/launcher={launcher}", f"cache_dir={cache}", f"hydra.sweep.dir={sweep}"]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    summaries = [json.loads(p.read_text()) for p in sorted(sweep.glob("*/summary.json"))]
    assert [(s["status"], s["seed"]) for s in summaries] == [("finished", 0), ("finished", 1)]
    assert summaries[0]["stages"] == summaries[1]["stages"]
    # local_jobs: two jobs share the cores (bench/jobs.py); submitit's jobs keep the machine's default
    assert {s["threads"] for s in summaries} == {job_share(2, 0, len(os.sched_getaffinity(0)), 0)[0] if launcher == "local_jobs" else torch.get_num_threads()}
    logs = "".join(p.read_text() for p in sweep.glob("*/*.log"))  # each run's own log (Hydra's job logging)
    for stage in ("sft", "preferences", "reward_model"):
        assert logs.count(f"cache miss: building {stage} ") == 1, stage
        entries = [p for p in (cache / stage).iterdir() if p.is_dir()]
        assert len(entries) == 1, f"{stage}: {entries}"  # one entry, no temporary or corrupt leftovers


def test_each_concurrent_job_gets_its_share_of_the_cores_and_its_own_gpu():
    assert job_share(n_jobs=3, job_num=0, cores=8, gpus=0) == (2, None)
    assert job_share(n_jobs=2, job_num=3, cores=16, gpus=2) == (8, 1)
    assert job_share(n_jobs=-1, job_num=5, cores=4, gpus=4) == (1, 1)  # joblib's -1: one job per core
    assert job_share(n_jobs=8, job_num=0, cores=2, gpus=0) == (1, None)  # never below one thread
