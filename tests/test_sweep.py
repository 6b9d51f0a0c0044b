"""The CI's end-to-end check: the default comparison (PPO, GRPO, DPO × 3 stage seeds × 2 seeds) on the tiny
preset as a Hydra multirun (SFT -> RM -> trainers), then the tables: the README's `rlhf-bench experiment=tiny`."""

import json
import subprocess
import sys

from pathlib import Path

from omegaconf import OmegaConf

from tests.conftest import TINY, compose_config

README = Path(__file__).resolve().parent.parent / "README.md"


def test_the_few_minute_experiment_is_the_tiny_settings_the_tests_use():
    """`experiment=tiny` and the tests' TINY overrides are one configuration (one identity, one stage cache)."""
    as_experiment = OmegaConf.to_container(compose_config("experiment=tiny", "logger.wandb_mode=disabled"), resolve=True)
    assert as_experiment == OmegaConf.to_container(compose_config(*TINY), resolve=True)


def test_default_sweep_then_results(tmp_path):
    sweep, cache = tmp_path / "sweep", tmp_path / "cache"
    assert "rlhf-bench experiment=tiny " in README.read_text()  # the command this test runs
    cmd = [sys.executable, "-m", "bench.app", "experiment=tiny", "logger.wandb_mode=offline", f"cache_dir={cache}", f"hydra.sweep.dir={sweep}"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    runs = sorted(p for p in sweep.iterdir() if p.is_dir() and p.name != "results")
    summaries = [json.loads((r / "summary.json").read_text()) for r in runs]
    assert [s["status"] for s in summaries] == ["finished"] * 18
    assert all(s["last_eval"]["compute/steps"] >= 1 for s in summaries)  # every algorithm got steps at the README's budget
    assert sorted((s["algo"], s["stage_seed"], s["seed"]) for s in summaries) == [
        (a, st, s) for a in ("dpo", "grpo", "ppo") for st in (0, 1, 2) for s in (0, 1)
    ]
    # each run's directory is named by its identity, and the three algorithms of one seed pair share no group
    assert all(r.name == f"{s['algo']}_sentiment_ss{s['stage_seed']}_s{s['seed']}_{s['identity']}" for r, s in zip(runs, summaries))
    assert len({s["group"] for s in summaries}) == 3
    # one set of stages per stage seed, built once, read by every algorithm and seed of it
    assert len({json.dumps(s["stages"], sort_keys=True) for s in summaries}) == 3
    assert (done.stdout + done.stderr).count("cache miss: building sft") == 3
    # the same vocabulary in every trainer
    for s in summaries:
        assert {"eval/gold_reward", "eval/kl_to_ref", "eval/win_rate_vs_sft", "compute/flops"} <= s["final"].keys()
        assert s["final"]["compute/flops"] == 2e10
    train_keys = {s["algo"]: set(json.loads((r / "metrics.jsonl").read_text().splitlines()[1])) for r, s in zip(runs, summaries)}
    assert all({"train/loss", "train/grad_norm", "compute/flops", "perf/step_s"} <= keys for keys in train_keys.values())
    assert "train/kl" in train_keys["ppo"] and "train/kl" in train_keys["grpo"] and "train/kl" not in train_keys["dpo"]
    assert all(list((r / "wandb").glob("offline-run-*")) for r in runs)

    # the multirun ended with its own tables (the Hydra callback), and the tool regenerates them anywhere
    out = sweep / "results"
    assert f"tables and plots in {out}" in done.stdout + done.stderr
    first = (out / "summary.csv").read_text()
    tables = subprocess.run([sys.executable, "-m", "bench.results", str(sweep), "--out", str(tmp_path / "again")],
                            capture_output=True, text=True, timeout=300)  # fmt: skip
    assert tables.returncode == 0, tables.stderr[-3000:]
    assert (tmp_path / "again" / "summary.csv").read_text() == first
    summary = first.splitlines()
    assert len(summary) == 4 and summary[0].startswith("task,algo,n,covers,runs,")
    rows = {line.split(",")[1]: line.split(",") for line in summary[1:]}
    assert set(rows) == {"ppo", "grpo", "dpo"}
    assert all(r[2:5] == ["3", "stage × trainer seeds (3 × 2)", "6"] for r in rows.values())
    assert (out / "sentiment.png").stat().st_size > 10_000
