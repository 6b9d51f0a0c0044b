"""Reliability: determinism, resume after SIGKILL, divergence, failures, parallel sweeps."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

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


@pytest.fixture(scope="module")
def whole_grpo(tmp_path_factory, shared_cache):
    """The uninterrupted run the killed and interrupted ones must end up equal to."""
    whole = tmp_path_factory.mktemp("whole") / "run"
    assert subprocess.run(_cli(whole, shared_cache), capture_output=True, timeout=600).returncode == 0
    return whole


def _stop_after_a_checkpoint(run_dir, cache, sig) -> subprocess.CompletedProcess:
    proc = subprocess.Popen(_cli(run_dir, cache), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.time() + 300
    while not (run_dir / "checkpoint.pt").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.killpg(proc.pid, sig)
    out, err = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _resumes_to_the_uninterrupted_run(stopped, whole, cache):
    again = subprocess.run(_cli(stopped, cache), capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "resuming" in again.stdout + again.stderr
    resumed, reference = (json.loads((d / "summary.json").read_text()) for d in (stopped, whole))
    assert resumed["status"] == "finished" and resumed["resumed_at_iteration"] > 0
    strip = lambda d: {k: v for k, v in d.items() if not k.startswith(WALL_CLOCK)}  # noqa: E731
    assert strip(resumed["final"]) == strip(reference["final"])
    assert _rows(stopped) == _rows(whole)  # rows after the checkpoint were dropped and logged again, none twice
    return resumed


def test_a_killed_run_resumes_to_the_same_final_metrics(tmp_path, shared_cache, whole_grpo):
    killed = tmp_path / "killed" / "run"
    _stop_after_a_checkpoint(killed, shared_cache, signal.SIGKILL)
    assert (killed / "checkpoint.pt").exists() and not (killed / "summary.json").exists(), "the kill came too late to test resume"
    assert len((killed / "metrics.jsonl").read_text().splitlines()) >= 1
    resumed = _resumes_to_the_uninterrupted_run(killed, whole_grpo, shared_cache)

    # started again once more, a finished run is skipped, not redone
    skipped = subprocess.run(_cli(killed, shared_cache), capture_output=True, text=True, timeout=600)
    assert "run already finished with this identity" in skipped.stdout + skipped.stderr
    assert json.loads((killed / "summary.json").read_text())["wall_s"] == resumed["wall_s"]


def test_sigterm_marks_the_run_interrupted_in_one_line_and_the_next_call_resumes_it(tmp_path, shared_cache, whole_grpo):
    """A scheduler's SIGTERM (or Ctrl-C) used to leave the run `failed` with no error and a 130-line traceback,
    and the next call started it over from zero."""
    stopped = tmp_path / "stopped" / "run"
    ended = _stop_after_a_checkpoint(stopped, shared_cache, signal.SIGTERM)
    summary = json.loads((stopped / "summary.json").read_text())
    if summary["status"] == "finished":
        pytest.fail("the signal came after the run had finished: nothing was interrupted")
    assert ended.returncode == 130 and "Traceback" not in ended.stderr, ended.stderr[-2000:]
    assert [line for line in ended.stderr.splitlines() if line.startswith("rlhf-bench:")] == [
        f"rlhf-bench: interrupted (SIGTERM): {stopped}; its checkpoint is kept, and the same command with hydra.sweep.dir={stopped.parent} resumes it"
    ]
    assert summary["status"] == "interrupted" and (stopped / "checkpoint.pt").exists()
    _resumes_to_the_uninterrupted_run(stopped, whole_grpo, shared_cache)


def test_a_corrupt_or_planted_checkpoint_is_moved_aside_and_the_run_starts_over(run_tiny, tmp_path, caplog):
    """A truncated file, and a pickle that would run code when unpickled in full (a planted checkpoint.pt on a shared
    file system): neither is loaded as a checkpoint; each is moved aside, named in one line, and the run starts over."""
    import logging

    class Planted:
        def __reduce__(self):
            return (Path.touch, (tmp_path / "code-ran",))

    whole, _ = run_tiny("algo=grpo", "budget.amount=5e9", name="whole")
    for name, write in [("corrupt", lambda p: p.write_bytes(b"PK\x03\x04 not a zip")), ("planted", lambda p: torch.save({"trainer": Planted()}, p))]:
        run_dir = tmp_path / name
        run_dir.mkdir()
        (run_dir / "config.json").write_text((tmp_path / "whole" / "config.json").read_text())
        write(run_dir / "checkpoint.pt")
        with caplog.at_level(logging.WARNING, logger="bench.runner"):
            summary, _ = run_tiny("algo=grpo", "budget.amount=5e9", name=name)
        assert summary["status"] == "finished" and "resumed_at_iteration" not in summary
        same = lambda d: {k: v for k, v in d.items() if not k.startswith(WALL_CLOCK)}  # noqa: E731
        assert same(summary["final"]) == same(whole["final"])  # started over: the same run as one never stopped
        (aside,) = run_dir.glob("checkpoint.pt.unreadable-*")
        assert f"{run_dir / 'checkpoint.pt'} does not load as a weights-only checkpoint" in caplog.text and str(aside) in caplog.text
    assert not (tmp_path / "code-ran").exists()


@pytest.mark.parametrize("algo", ["rloo", "reinforce_pp", "best_of_n"])
def test_a_run_stopped_after_a_checkpoint_resumes_to_the_uninterrupted_one(run_tiny, monkeypatch, algo):
    """In process (the SIGKILL test above covers the process side): the run dies right after its first checkpoint,
    leaving it and no summary; started again, it continues from there to the very rows of a run never stopped."""
    overrides = (f"algo={algo}", "budget.amount=3e10", "checkpoint_every=0.3", "algo.prompts_per_step=128" if algo == "best_of_n" else "seed=0")
    _, whole = run_tiny(*overrides, name="whole")
    stop_after_a_checkpoint_and_resume(run_tiny, monkeypatch, overrides, whole)


def stop_after_a_checkpoint_and_resume(run_tiny, monkeypatch, overrides: tuple[str, ...], whole) -> None:
    """Run `overrides` as `stopped` next to the finished run `whole`, dying right after its first checkpoint (no
    summary, as a kill leaves it), then again: it resumes, and its rows are `whole`'s."""
    from bench.runner import loop

    save = loop.save_checkpoint

    def save_then_die(*args):
        save(*args)
        raise SystemExit("killed")

    monkeypatch.setattr(loop, "save_checkpoint", save_then_die)
    with pytest.raises(SystemExit):
        run_tiny(*overrides, name="stopped")
    stopped = whole.parent / "stopped"
    (stopped / "summary.json").unlink()  # a killed run writes none
    monkeypatch.setattr(loop, "save_checkpoint", save)
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


def test_a_sweep_with_a_failed_run_finishes_the_others_then_exits_non_zero_naming_it(tmp_path, shared_cache, monkeypatch):
    """A failed run used to leave the command's status 0, as if the sweep had succeeded. Best-of-N asked for more
    prompts than the task has fails in its constructor, after the stages: a failure at run time, not a bad config."""
    sweep = tmp_path / "sweep"
    cmd = [sys.executable, "-m", "bench.app", "-m", *TINY, "algo=best_of_n", "algo.prompts_per_step=100000,16", "stage_seed=0", "seed=0",
           "budget.amount=5e9", f"cache_dir={shared_cache}", f"hydra.sweep.dir={sweep}"]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    by_prompts = {s["settings"]["algo.prompts_per_step"]: (p, s) for p, s in ((p, json.loads(p.read_text())) for p in sweep.glob("*/summary.json"))}
    (failed_path, failed), (_, fine) = by_prompts[100000], by_prompts[16]
    assert (failed["status"], fine["status"]) == ("failed", "finished")  # the sweep went on past the failure
    assert done.returncode == 1
    assert f"1 of the 2 runs it ran failed; their errors: {failed_path}" in done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr and "Traceback" in failed["error"]  # the traceback is in the summary

    from hydra.core.global_hydra import GlobalHydra

    from bench import app

    # a single run (in this process, the stages cached): the failed run again, and its exit status 1 at once
    monkeypatch.setattr(sys, "argv", ["rlhf-bench", *[a for a in cmd[4:] if a != "algo.prompts_per_step=100000,16"],
                                      "algo.prompts_per_step=100000", "hydra.mode=RUN", f"hydra.run.dir={tmp_path / 'one'}"])  # fmt: skip
    GlobalHydra.instance().clear()
    with pytest.raises(SystemExit) as one:
        app.main()
    assert one.value.code == 1 and json.loads((tmp_path / "one" / "summary.json").read_text())["status"] == "failed"

    # the sweep's fine run again, into the same directory: reused, and the earlier call's failed run is not this one's
    monkeypatch.setattr(sys, "argv", ["rlhf-bench", "-m", *[a for a in cmd[4:] if a != "algo.prompts_per_step=100000,16"], "algo.prompts_per_step=16"])
    GlobalHydra.instance().clear()
    app.main()  # no SystemExit: exit status 0


def test_a_budget_that_buys_no_step_is_refused_with_the_cost_of_one_and_the_smallest_budget(run_tiny):
    """At 1e8 FLOPs DPO's reference log-probs of its 256 pairs alone overrun the budget: the run would report the SFT
    model's numbers as DPO's. Refused with what one step costs; at the budget it names, the run takes its step."""
    from bench.runner.loop import BudgetBuysNoStep

    with pytest.raises(BudgetBuysNoStep) as refused:
        run_tiny("algo=dpo", "budget.amount=1e8", name="small")
    message = str(refused.value)
    assert message.startswith("budget.amount=1e+08 buys no step of dpo: one costs ") and "FLOPs, after " in message
    smallest = message.rsplit("budget.amount=", 1)[1]
    summary, _ = run_tiny("algo=dpo", f"budget.amount={smallest}", name="enough")
    assert summary["status"] == "finished" and summary["last_eval"]["compute/steps"] >= 1


def test_a_finished_run_under_other_library_versions_is_refused_unless_accepted(run_tiny):
    """The same config under transformers 5.23 and 5.24 gave PPO 0.624 and 0.603: another computation under one
    identity, which used to be reused as if it were the same."""
    from bench.config import ConfigError

    first, run_dir = run_tiny("algo=dpo", "budget.amount=5e9")
    summary = json.loads((run_dir / "summary.json").read_text())
    summary["execution"]["versions"]["transformers"] = "5.23.0"
    (run_dir / "summary.json").write_text(json.dumps(summary))
    with pytest.raises(ConfigError, match=r"computed under transformers 5\.23\.0 \(here .+\); run it again in its own directory .+ reuse_other_versions=true"):
        run_tiny("algo=dpo", "budget.amount=5e9")
    reused, _ = run_tiny("algo=dpo", "budget.amount=5e9", "reuse_other_versions=true")
    assert reused["wall_s"] == first["wall_s"]  # reused as it is, not run again
    assert first["execution"]["versions"].keys() == {"torch", "transformers", "datasets", "peft", "rlhf-bench"}
