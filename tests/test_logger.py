"""The logger: wandb's environment variables, the samples file, the console line."""

import json
import logging

import pytest

from bench import rundir
from bench.config import LoggerConfig, WandbMode
from bench.logger import Progress, RunLogger, wandb_settings


def test_wandb_environment_variables_apply_where_the_config_is_silent(monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_PROJECT", raising=False)
    monkeypatch.delenv("WANDB_ENTITY", raising=False)
    assert wandb_settings(LoggerConfig()) == {"mode": "offline", "project": "rlhf-bench", "entity": None}
    monkeypatch.setenv("WANDB_MODE", "online")
    monkeypatch.setenv("WANDB_PROJECT", "mine")
    monkeypatch.setenv("WANDB_ENTITY", "team")
    assert wandb_settings(LoggerConfig()) == {"mode": "online", "project": "mine", "entity": "team"}
    explicit = LoggerConfig(wandb_mode=WandbMode.disabled, project="p", entity="e")
    assert wandb_settings(explicit) == {"mode": "disabled", "project": "p", "entity": "e"}  # the config wins


def test_samples_are_appended_with_the_compute_they_were_drawn_at(tmp_path):
    logger = RunLogger(LoggerConfig(wandb_mode=WandbMode.disabled), tmp_path, "run", "g", "dpo", ["t"], {})
    logger.log_samples([{"prompt": "p", "completion": "c", "gold_reward": 0.5, "proxy_reward": 1.0, "log_ratio": 0.1}],
                       {"compute/flops": 0.0})  # fmt: skip
    logger.log_samples([{"prompt": "p", "completion": "d", "gold_reward": 0.2, "proxy_reward": 3.0, "log_ratio": 2.0}],
                       {"compute/flops": 10.0})  # fmt: skip
    logger.close()
    rows = [json.loads(line) for line in (tmp_path / "samples.jsonl").read_text().splitlines()]
    assert [(r["compute/flops"], r["completion"]) for r in rows] == [(0.0, "c"), (10.0, "d")]


def test_one_line_per_evaluation_with_the_eta(caplog):
    """Half the budget in 40 s: 40 s to go."""
    with caplog.at_level(logging.INFO, logger="rlhf-bench"):
        Progress("ppo sentiment ss0 s0").evaluation(
            {"compute/budget_fraction": 0.5, "compute/seconds": 40.0, "eval/gold_reward": 0.25, "eval/proxy_reward": 1.5, "eval/kl_to_ref": 2.0}
        )
    (line,) = [r.getMessage() for r in caplog.records]
    assert line == "ppo sentiment ss0 s0 |  50% | gold 0.250 | proxy 1.500 | KL 2.000 | elapsed 40s | ETA 40s"
    assert "\r" not in line and "\x1b" not in line  # reads the same in a log file


@pytest.mark.parametrize("status", ["diverged", "failed"])
def test_the_headline_of_a_run_that_did_not_finish_says_how_it_ended(caplog, status):
    with caplog.at_level(logging.INFO, logger="rlhf-bench"):
        Progress("dpo").finished({"status": status})
    assert caplog.records[0].getMessage() == f"dpo | {status}"


def _capture_wandb_init(monkeypatch) -> list[dict]:
    import bench.logger

    calls, real = [], bench.logger.wandb.init
    monkeypatch.setattr(bench.logger.wandb, "init", lambda **kw: calls.append(kw) or real(**kw))
    return calls


def test_a_run_is_grouped_by_configuration_and_writes_its_samples(run_tiny, monkeypatch):
    calls = _capture_wandb_init(monkeypatch)
    summary, run_dir = run_tiny("algo=dpo", "budget.amount=5e9", "eval.log_samples=4")
    (init,) = calls
    assert init["group"] == f"sentiment_dpo_{summary['group']}" and init["job_type"] == "dpo"
    assert "sweep:tests" in init["tags"] and "sentiment" in init["tags"]
    samples = [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]
    evals = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if "eval/gold_reward" in json.loads(line)]
    assert len(samples) == 4 * len(evals)  # the SFT baseline's, then each evaluation's
    assert [s["compute/flops"] for s in samples[::4]] == [e["compute/flops"] for e in evals]
    assert set(samples[0]) >= {"prompt", "completion", "gold_reward", "proxy_reward", "log_ratio", "compute/flops"}
    assert summary["best"]["eval/gold_reward"] == max(e["eval/gold_reward"] for e in evals)


def test_a_resumed_run_continues_its_wandb_run_and_keeps_its_samples_once(run_tiny, monkeypatch):
    """Killed after its last checkpoint (the summary never written): started again, it reuses the wandb id and
    logs nothing twice."""
    calls = _capture_wandb_init(monkeypatch)
    first, run_dir = run_tiny("algo=dpo", "budget.amount=5e9", name="run")
    samples = (run_dir / "samples.jsonl").read_text()
    (run_dir / "summary.json").unlink()
    again, _ = run_tiny("algo=dpo", "budget.amount=5e9", name="run")
    first_id = rundir.read_checkpoint(run_dir / "checkpoint.pt")["runner"]["wandb_id"]
    assert again["resumed_at_iteration"] > 0 and calls[0]["id"] is None and first_id
    assert (calls[1]["id"], calls[1]["resume"]) == (first_id, "allow")
    assert (run_dir / "samples.jsonl").read_text() == samples
