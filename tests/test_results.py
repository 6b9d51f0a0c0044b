"""The results tool on run directories written by hand, with known values worked out in the docstrings."""

import json
import logging
import math

import pytest

from bench.results import (
    compute_matched_table, interpolate_at, load_runs, load_summaries, main, pairwise_table, summary_table, task_figure,
)  # fmt: skip
from bench.runner import SUMMARY_SCHEMA

T975_DF2 = 4.302653  # Student t quantile, 97.5 %, 2 degrees of freedom


def _write_run(root, name, algo, seed, gold, status="finished", curve=None, schema=SUMMARY_SCHEMA, budget=400.0):
    run = root / name
    run.mkdir(parents=True)
    curve = curve or [(0.0, 0.0), (budget, gold)]
    rows = [{"compute/flops": f, "compute/seconds": f / 100, "compute/samples": 0, "eval/gold_reward": g,
             "eval/proxy_reward": 2 * g, "eval/kl_to_ref": f / 100} for f, g in curve]  # fmt: skip
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (run / "config.json").write_text("{}")
    summary = {
        "schema": schema, "status": status, "algo": algo, "task": "toy", "model": "tiny", "seed": seed, "stage_seed": 0,
        "budget": {"unit": "flops", "amount": budget}, "wall_s": 10.0 + seed,
        "final": {"eval/gold_reward": gold, "eval/proxy_reward": 2 * gold, "eval/kl_to_ref": 1.0, "compute/flops": curve[-1][0]},
        "memory": {"memory/policy/param_bytes": 100.0, "memory/peak_bytes/update": 1000.0 * (seed + 1)},
    }  # fmt: skip
    if status == "diverged":
        summary["diverged"] = {"metric": "train/loss", "value": "nan", "step": 7}
    (run / "summary.json").write_text(json.dumps(summary))
    return run


@pytest.fixture
def sweep(tmp_path):
    """ppo gold 0.1, 0.2, 0.3; dpo gold 0.5, 0.5, 0.8; one diverged ppo run; one dir without summary; one old schema."""
    root = tmp_path / "sweep"
    for seed, gold in enumerate([0.1, 0.2, 0.3]):
        _write_run(root, f"{seed}_ppo", "ppo", seed, gold)
    for seed, gold in enumerate([0.5, 0.5, 0.8]):
        _write_run(root, f"{seed}_dpo", "dpo", seed, gold)
    _write_run(root, "9_ppo_diverged", "ppo", 3, 99.0, status="diverged")
    _write_run(root, "8_old", "ppo", 4, 99.0, schema=0)
    (root / "7_running").mkdir()
    (root / "7_running" / "config.json").write_text("{}")
    return root


def test_mean_and_ci_by_hand(sweep):
    """ppo: mean 0.2, sd 0.1 -> CI 4.302653 · 0.1 / √3 = 0.248414.
    dpo: mean 0.6, sd √0.03 = 0.173205 -> CI 4.302653 · 0.173205 / √3 = 0.430265.
    The diverged run (gold 99) is counted, never averaged in."""
    table = summary_table(load_summaries([str(sweep)]).summaries).set_index("algo")
    assert table.loc["ppo", "eval/gold_reward"] == pytest.approx(0.2)
    assert table.loc["ppo", "eval/gold_reward ±"] == pytest.approx(T975_DF2 * 0.1 / math.sqrt(3), rel=1e-5)
    assert table.loc["dpo", "eval/gold_reward"] == pytest.approx(0.6)
    assert table.loc["dpo", "eval/gold_reward ±"] == pytest.approx(0.430265, rel=1e-5)
    assert (table.loc["ppo", "n"], table.loc["ppo", "diverged"], table.loc["dpo", "n"]) == (3, 1, 3)
    assert table.loc["ppo", "memory/peak_bytes"] == pytest.approx(2000.0)


def test_skipped_directories_are_named_with_the_reason(sweep, caplog):
    with caplog.at_level(logging.WARNING):
        runs = load_summaries([str(sweep)])
    reasons = dict(runs.skipped)
    assert set(reasons) == {str(sweep / "8_old"), str(sweep / "7_running")}
    assert "schema 0" in reasons[str(sweep / "8_old")]
    assert "no summary.json" in reasons[str(sweep / "7_running")]
    assert sum("7_running" in r.getMessage() for r in caplog.records) == 1
    assert len(runs.summaries) == 7


def test_interpolation_on_a_known_curve():
    """Points (0, 0), (150, .3), (250, .5), (400, .8): at 200 -> .3 + ½·.2 = .4; at 300 -> .5 + ⅓·.3 = .6; beyond 400 -> NaN."""
    import pandas as pd

    curve = pd.DataFrame({"x": [250, 0, 150, 400], "y": [0.5, 0.0, 0.3, 0.8]})
    assert interpolate_at(curve, "x", "y", 200) == pytest.approx(0.4)
    assert interpolate_at(curve, "x", "y", 300) == pytest.approx(0.6)
    assert math.isnan(interpolate_at(curve, "x", "y", 401))


def test_compute_matched_reads_the_curve_and_never_extrapolates(tmp_path):
    curve = [(0.0, 0.0), (150.0, 0.3), (250.0, 0.5), (400.0, 0.8)]
    for seed in range(3):
        _write_run(tmp_path, f"{seed}_grpo", "grpo", seed, 0.8, curve=curve)
    _write_run(tmp_path, "short", "dpo", 0, 0.5, curve=[(0.0, 0.0), (300.0, 0.6)])  # stopped early
    runs = load_summaries([str(tmp_path)]).summaries
    table = compute_matched_table(runs, load_runs([str(tmp_path)])).set_index(["algo", "budget_fraction"])
    assert table.loc[("grpo", 0.5), "eval/gold_reward"] == pytest.approx(0.4)
    assert table.loc[("grpo", 0.75), "eval/gold_reward"] == pytest.approx(0.6)
    assert table.loc[("grpo", 0.25), "eval/gold_reward"] == pytest.approx(0.2)
    assert table.loc[("dpo", 0.5), "eval/gold_reward"] == pytest.approx(0.4)
    assert math.isnan(table.loc[("dpo", 1.0), "eval/gold_reward"])


def test_pairwise_flags_a_planted_difference_and_not_equal_means(tmp_path):
    for seed, (a, b, c) in enumerate([(0.1, 0.9, 0.3), (0.2, 1.0, 0.2), (0.3, 1.1, 0.1)]):
        _write_run(tmp_path, f"{seed}_a", "ppo", seed, a)
        _write_run(tmp_path, f"{seed}_b", "grpo", seed, b)
        _write_run(tmp_path, f"{seed}_c", "dpo", seed, c)
    table = pairwise_table(load_summaries([str(tmp_path)]).summaries).set_index(["a", "b"])
    assert table.loc[("grpo", "ppo"), "winner"] == "grpo"
    assert table.loc[("grpo", "ppo"), "diff"] == pytest.approx(0.8)
    assert table.loc[("grpo", "ppo"), "p_value"] < 0.001
    assert table.loc[("dpo", "ppo"), "winner"] == "no significant difference at n = 3, 3"
    assert table.loc[("dpo", "ppo"), "p_value"] == pytest.approx(1.0)


def test_figure_has_one_line_per_algorithm_in_each_panel(sweep):
    fig = task_figure("toy", load_runs([str(sweep)]))
    curve, frontier, over = fig.axes
    assert [len(ax.lines) for ax in fig.axes] == [2, 2, 2]
    assert {line.get_label() for line in curve.lines} == {"ppo", "dpo"}
    assert curve.get_xlabel() == "compute (FLOPs)" and frontier.get_xlabel().startswith("KL to reference")


def test_cli_writes_every_table_and_plot(sweep, tmp_path):
    out = tmp_path / "results"
    assert main([str(sweep), "--out", str(out)]) == 0
    for name in ("summary", "compute_matched", "memory", "pairwise"):
        for ext in ("csv", "md", "tex"):
            assert (out / f"{name}.{ext}").stat().st_size > 0
    assert (out / "toy.png").read_bytes()[:4] == b"\x89PNG" and (out / "toy.pdf").read_bytes()[:4] == b"%PDF"
    readme = (out / "README.md").read_text()
    assert "Runs read: 7 (1 diverged, 6 finished); skipped: 2." in readme
    assert f"Sweeps: `{sweep}` (7 runs)." in readme
    assert "9_ppo_diverged" in readme and "7_running" in readme


def test_empty_input_says_so_and_fails(tmp_path, caplog):
    (tmp_path / "empty").mkdir()
    with caplog.at_level(logging.ERROR):
        assert main([str(tmp_path / "empty"), "--out", str(tmp_path / "r")]) == 1
    assert any("no runs found" in r.getMessage() for r in caplog.records)


def test_wandb_runs_become_the_same_frames(monkeypatch):
    """--wandb reads runs through wandb's public API; a stand-in API with two runs gives the same tables."""
    import wandb

    from bench.results import load_wandb

    class FakeRun:
        def __init__(self, algo, seed, gold):
            self.config = {"algo": {"name": algo}, "task": {"name": "toy"}, "model": {"preset": "tiny", "name": None},
                           "seed": seed, "stage_seed": 0, "budget": {"unit": "flops", "amount": 400.0}}  # fmt: skip
            self.summary = {"status": "finished", "eval/gold_reward": gold, "compute/flops": 400.0, "_step": 3}
            self.path = ["me", "proj", f"{algo}{seed}"]
            self._history = [{"compute/flops": 0.0, "eval/gold_reward": 0.0}, {"compute/flops": 400.0, "eval/gold_reward": gold}]

        def scan_history(self):
            return iter(self._history)

    class FakeApi:
        def runs(self, path):
            assert path == "me/proj"
            return [FakeRun("ppo", 0, 0.1), FakeRun("ppo", 1, 0.3)]

    monkeypatch.setattr(wandb, "Api", FakeApi)
    runs, curves = load_wandb("me/proj")
    table = summary_table(runs.summaries)
    assert table.loc[0, "eval/gold_reward"] == pytest.approx(0.2) and table.loc[0, "n"] == 2
    assert "_step" not in runs.summaries.columns
    matched = compute_matched_table(runs.summaries, curves).set_index("budget_fraction")
    assert matched.loc[0.5, "eval/gold_reward"] == pytest.approx(0.1)
