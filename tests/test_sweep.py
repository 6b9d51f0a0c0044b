"""The CI's end-to-end check: a tiny three-way Hydra multirun (SFT -> RM -> PPO, GRPO, DPO), then the tables."""

import json
import subprocess
import sys

from tests.conftest import TINY


def test_three_way_sweep_then_results(tmp_path):
    sweep, cache = tmp_path / "sweep", tmp_path / "cache"
    cmd = [sys.executable, "-m", "bench.app", "-m", "algo=ppo,grpo,dpo", "task=sentiment", *TINY,
           "logger.wandb_mode=offline", f"cache_dir={cache}", f"hydra.sweep.dir={sweep}"]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    runs = sorted(p for p in sweep.iterdir() if p.is_dir())
    assert [p.name for p in runs] == ["0_ppo_sentiment_s0", "1_grpo_sentiment_s0", "2_dpo_sentiment_s0"]
    summaries = [json.loads((r / "summary.json").read_text()) for r in runs]
    assert [s["status"] for s in summaries] == ["finished"] * 3
    # one set of stages, built once, read by all three
    assert len({json.dumps(s["stages"], sort_keys=True) for s in summaries}) == 1
    assert (done.stdout + done.stderr).count("cache miss: building sft") == 1
    # the same vocabulary in every trainer
    for s in summaries:
        assert {"eval/gold_reward", "eval/kl_to_ref", "eval/win_rate_vs_sft", "compute/flops"} <= s["final"].keys()
        assert s["final"]["compute/flops"] >= 2e10
    train_keys = [set(json.loads((r / "metrics.jsonl").read_text().splitlines()[1])) for r in runs]
    assert all({"train/loss", "train/kl", "train/grad_norm", "compute/flops", "perf/step_s"} <= keys for keys in train_keys)
    # wandb: offline runs grouped by sweep, typed by algorithm
    assert all(list((r / "wandb").glob("offline-run-*")) for r in runs)

    out = tmp_path / "results"
    tables = subprocess.run([sys.executable, "-m", "bench.results", str(sweep), "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert tables.returncode == 0, tables.stderr[-3000:]
    summary = (out / "summary.csv").read_text().splitlines()
    assert len(summary) == 4 and summary[0].startswith("task,algo,n,")
    assert {line.split(",")[1] for line in summary[1:]} == {"ppo", "grpo", "dpo"}
    assert (out / "sentiment.png").stat().st_size > 10_000
