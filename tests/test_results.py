"""The results tool on run directories written by hand, with known values worked out in the docstrings."""

import json
import logging
import math

import pytest

from bench import rundir
from bench.results import (
    compute_matched_table, distinguishing_keys, interpolate_at, kl_matched_table, load_runs, load_summaries, main, memory_table,
    pairwise_table, ranking_table, summary_table, task_figure,
)  # fmt: skip
from bench.rundir import SUMMARY_SCHEMA

T975_DF2 = 4.302653  # Student t quantile, 97.5 %, 2 degrees of freedom
T975_DF4 = 2.776445  # Student t quantile, 97.5 %, 4 degrees of freedom


def _write_run(root, name, algo, seed, gold, status="finished", curve=None, schema=SUMMARY_SCHEMA, budget=400.0,
               stage_seed=0, preset="tiny", **algo_settings):  # fmt: skip
    """A run directory as the runner writes it; `algo_settings` (e.g. beta=0.1) go in the config's algo section."""
    run = root / name
    run.mkdir(parents=True)
    curve = curve or [(0.0, 0.0), (budget, gold)]
    points = [(p[0], p[1], p[2] if len(p) > 2 else p[0] / 100) for p in curve]  # (flops, gold[, seconds])
    rows = [{"compute/flops": f, "compute/seconds": sec, "compute/samples": 0, "eval/gold_reward": g,
             "eval/proxy_reward": 2 * g, "eval/kl_to_ref": f / 100} for f, g, sec in points]  # fmt: skip
    (run / rundir.METRICS).write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = {"algo": {"name": algo, **algo_settings}, "task": {"name": "toy"}, "model": {"preset": preset},
              "budget": {"unit": "flops", "amount": budget}, "seed": seed, "stage_seed": stage_seed, "resume": True}  # fmt: skip
    (run / rundir.CONFIG).write_text(json.dumps(config))
    summary = {
        "schema": schema, "status": status, "algo": algo, "task": "toy", "model": preset, "seed": seed, "stage_seed": stage_seed,
        "identity": rundir.identity(config), "group": rundir.group(config), "settings": rundir.settings(config),
        "budget": {"unit": "flops", "amount": budget}, "wall_s": 10.0 + seed, "git_commit": "abc123", "versions": {"torch": "2.13.0"},
        "final": {"eval/gold_reward": gold, "eval/proxy_reward": 2 * gold, "eval/kl_to_ref": 1.0, "compute/flops": curve[-1][0]},
        "memory": {"memory/policy/param_bytes": 100.0, "memory/peak_bytes/update": 1000.0 * (seed + 1)},
    }  # fmt: skip
    if status == "diverged":
        summary["diverged"] = {"metric": "train/loss", "value": "nan", "step": 7}
    (run / rundir.SUMMARY).write_text(json.dumps(summary))
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
    _write_run(root, "8_old", "ppo", 4, 99.0, schema=1)
    (root / "7_running").mkdir()
    (root / "7_running" / "config.json").write_text("{}")
    return root


# stage seed -> gold of trainer seeds 0 and 1. ppo's stage means 0.2, 0.5, 0.6; dpo's 0.1, 0.35, 0.5.
PPO_3X2 = {0: (0.1, 0.3), 1: (0.4, 0.6), 2: (0.5, 0.7)}
DPO_3X2 = {0: (0.05, 0.15), 1: (0.3, 0.4), 2: (0.45, 0.55)}


def _write_stage_sweep(root, algo, golds):
    for stage_seed, per_seed in golds.items():
        for seed, gold in enumerate(per_seed):
            _write_run(root, f"{algo}_st{stage_seed}_s{seed}", algo, seed, gold, stage_seed=stage_seed)


def test_mean_and_ci_by_hand(sweep):
    """One stage seed: the interval is Student-t over the runs, as before.
    ppo: mean 0.2, sd 0.1 -> CI 4.302653 · 0.1 / √3 = 0.248414.
    dpo: mean 0.6, sd √0.03 = 0.173205 -> CI 4.302653 · 0.173205 / √3 = 0.430265.
    The diverged run (gold 99) is counted, never averaged in."""
    unindexed = summary_table(load_summaries([str(sweep)]).summaries)
    assert list(unindexed.columns[:3]) == ["task", "algo", "n"]  # nothing differs within an algorithm: no settings column
    table = unindexed.set_index("algo")
    assert table.loc["ppo", "eval/gold_reward"] == pytest.approx(0.2)
    assert table.loc["ppo", "eval/gold_reward ±"] == pytest.approx(T975_DF2 * 0.1 / math.sqrt(3), rel=1e-5)
    assert table.loc["dpo", "eval/gold_reward"] == pytest.approx(0.6)
    assert table.loc["dpo", "eval/gold_reward ±"] == pytest.approx(0.430265, rel=1e-5)
    assert (table.loc["ppo", "n"], table.loc["ppo", "runs"], table.loc["ppo", "diverged"], table.loc["dpo", "n"]) == (3, 3, 1, 3)
    assert set(table["covers"]) == {"trainer seeds only (1 stage seed)"}
    assert table.loc["ppo", "memory/peak_bytes"] == pytest.approx(2000.0)


def test_skipped_directories_are_named_with_the_reason(sweep, caplog):
    with caplog.at_level(logging.WARNING):
        runs = load_summaries([str(sweep)])
    reasons = dict(runs.skipped)
    assert set(reasons) == {str(sweep / "8_old"), str(sweep / "7_running")}
    assert "schema 1" in reasons[str(sweep / "8_old")] and "reads 2" in reasons[str(sweep / "8_old")]
    assert "no summary.json" in reasons[str(sweep / "7_running")]
    assert sum("7_running" in r.getMessage() for r in caplog.records) == 1
    assert len(runs.summaries) == 7


def test_two_betas_are_two_groups_in_every_table(tmp_path):
    """dpo β=0.05 gold 0.1, 0.2, 0.3 and dpo β=0.5 gold 0.5, 0.6, 0.7, same task, seeds 0-2, one stage seed.
    Two groups, never one mean of 0.4: means 0.2 and 0.6, each ± 4.302653 · 0.1 / √3 = 0.248414.
    Pairwise (Welch, runs): diff 0.2 - 0.6 = -0.4, se = √(0.01/3 + 0.01/3) = 0.0816497, df = 4,
    CI 2.776445 · 0.0816497 = 0.226696, t = -4.899 -> p = 0.00805: β=0.5 wins.
    `algo.beta` is a column; `model.preset` (tiny for all) is not."""
    for seed in range(3):
        _write_run(tmp_path, f"low_{seed}", "dpo", seed, 0.1 * (seed + 1), beta=0.05)
        _write_run(tmp_path, f"high_{seed}", "dpo", seed, 0.5 + 0.1 * seed, beta=0.5)
    runs, curves = load_summaries([str(tmp_path)]).summaries, load_runs([str(tmp_path)])
    summary = summary_table(runs)
    matched = compute_matched_table(runs, curves)
    memory = memory_table(runs)
    pairwise = pairwise_table(runs)
    for table in (summary, matched, memory):
        assert "algo.beta" in table.columns and "model.preset" not in table.columns
        assert sorted(table["algo.beta"].unique()) == [0.05, 0.5]
    assert len(summary) == 2 and len(memory) == 2 and len(matched) == 2 * 4
    by_beta = summary.set_index("algo.beta")
    assert by_beta.loc[0.05, "eval/gold_reward"] == pytest.approx(0.2)
    assert by_beta.loc[0.5, "eval/gold_reward"] == pytest.approx(0.6)
    assert by_beta.loc[0.5, "eval/gold_reward ±"] == pytest.approx(T975_DF2 * 0.1 / math.sqrt(3), rel=1e-5)
    assert matched.set_index(["algo.beta", "budget_fraction"]).loc[(0.5, 0.5), "eval/gold_reward"] == pytest.approx(0.3)
    assert (memory["memory/peak_bytes/update"] == 2000.0).all()
    assert len(pairwise) == 1
    pair = pairwise.iloc[0]
    assert (pair["a"], pair["b"]) == ("dpo algo.beta=0.05", "dpo algo.beta=0.5")
    assert (pair["test"], pair["n"]) == ("Welch t (runs)", "3, 3")
    assert pair["diff"] == pytest.approx(-0.4)
    assert pair["ci95"] == pytest.approx(T975_DF4 * math.sqrt(0.02 / 3), rel=1e-5)
    assert pair["p_value"] == pytest.approx(0.00805, abs=5e-5)
    assert pair["winner"] == "dpo algo.beta=0.5"
    fig = task_figure("toy", curves)
    labels = [set(ax.get_legend_handles_labels()[1]) for ax in fig.axes]
    assert labels[0] == labels[1] == {"dpo algo.beta=0.05", "dpo algo.beta=0.5", "SFT model"}
    assert labels[2] == {"dpo algo.beta=0.05", "dpo algo.beta=0.5"}


def test_a_key_differing_only_between_algorithms_adds_no_column(tmp_path):
    """ppo β=0.05 and dpo β=0.1 are told apart by `algo` already; two model presets within dpo are not."""
    _write_run(tmp_path, "ppo", "ppo", 0, 0.1, beta=0.05)
    _write_run(tmp_path, "dpo", "dpo", 0, 0.2, beta=0.1)
    assert distinguishing_keys(load_summaries([str(tmp_path)]).summaries) == []
    _write_run(tmp_path, "dpo_small", "dpo", 0, 0.3, beta=0.1, preset="small")
    table = summary_table(load_summaries([str(tmp_path)]).summaries)
    assert list(table.columns[:3]) == ["task", "algo", "model.preset"] and "algo.beta" not in table.columns
    assert list(zip(table["algo"], table["model.preset"])) == [("dpo", "small"), ("dpo", "tiny"), ("ppo", "tiny")]


def test_interval_over_stage_seed_means(tmp_path):
    """ppo, 3 stage seeds × 2 trainer seeds: gold (0.1, 0.3), (0.4, 0.6), (0.5, 0.7).
    Stage-seed means 0.2, 0.5, 0.6: mean 0.433333, sd = √(((-0.23333)² + 0.06667² + 0.16667²) / 2) = 0.208167,
    interval t(0.975, df=2) · sd / √3 = 4.302653 · 0.208167 / 1.732051 = 0.517115, n = 3 (not 6 runs).
    At half the budget every gold is halved: mean 0.216667 ± 0.258557."""
    _write_stage_sweep(tmp_path, "ppo", PPO_3X2)
    runs = load_summaries([str(tmp_path)]).summaries
    row = summary_table(runs).iloc[0]
    assert row["eval/gold_reward"] == pytest.approx(0.433333, rel=1e-5)
    assert row["eval/gold_reward ±"] == pytest.approx(T975_DF2 * 0.208167 / math.sqrt(3), rel=1e-5)
    assert (row["n"], row["runs"], row["covers"]) == (3, 6, "stage × trainer seeds (3 × 2)")
    matched = compute_matched_table(runs, load_runs([str(tmp_path)])).set_index("budget_fraction")
    assert matched.loc[0.5, "eval/gold_reward"] == pytest.approx(0.216667, rel=1e-5)
    assert matched.loc[0.5, "eval/gold_reward ±"] == pytest.approx(0.258557, rel=1e-5)
    assert (matched.loc[0.5, "eval/gold_reward n"], matched.loc[0.5, "covers"]) == (3, "stage × trainer seeds (3 × 2)")


def test_paired_test_over_shared_stage_seeds(tmp_path):
    """dpo and ppo share stage seeds 0, 1, 2 (2 trainer seeds each). Stage means: dpo 0.1, 0.35, 0.5; ppo 0.2, 0.5, 0.6.
    d = dpo - ppo = [-0.1, -0.15, -0.1]: mean -0.116667, sd = √((0.016667² + 0.033333² + 0.016667²) / 2) = 0.028868,
    se = sd / √3 = 0.016667, t = -7.0, CI = 4.302653 · 0.016667 = 0.071711,
    p = 2·P(T₂ > 7) = 1 - 7 / √(7² + 2) = 0.019804 < 0.05: ppo would win alone, but it is the smallest of the
    table's 3 p-values, so Holm makes it 3 · 0.019804 = 0.059412 and there is no winner at n = 3.
    grpo (stage seed 0 only, gold 0.1, 0.2, 0.3) against either: Welch's t, stage-seed means vs runs, n = 3, 3."""
    _write_stage_sweep(tmp_path, "ppo", PPO_3X2)
    _write_stage_sweep(tmp_path, "dpo", DPO_3X2)
    for seed, gold in enumerate([0.1, 0.2, 0.3]):
        _write_run(tmp_path, f"grpo_s{seed}", "grpo", seed, gold)
    table = pairwise_table(load_summaries([str(tmp_path)]).summaries).set_index(["a", "b"])
    pair = table.loc[("dpo", "ppo")]
    assert (pair["test"], pair["n"]) == ("paired t (shared stage seeds)", "3")
    assert pair["diff"] == pytest.approx(-0.116667, rel=1e-5)
    assert pair["ci95"] == pytest.approx(T975_DF2 * 0.028868 / math.sqrt(3), rel=1e-4)
    assert pair["p_value"] == pytest.approx(1 - 7 / math.sqrt(51), rel=1e-4)
    assert pair["p_holm"] == pytest.approx(3 * (1 - 7 / math.sqrt(51)), rel=1e-4) and pair["family"] == 3
    assert pair["winner"] == "no significant difference at n = 3"
    mixed = table.loc[("dpo", "grpo")]
    assert (mixed["test"], mixed["n"]) == ("Welch t (stage-seed means vs runs)", "3, 3")
    assert mixed["diff"] == pytest.approx(0.316667 - 0.2, rel=1e-5)


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
    assert table.loc[("dpo", 1.0), "eval/gold_reward n"] == 0 and table.loc[("dpo", 1.0), "covers"] == ""


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


def test_a_constant_difference_or_two_stage_seeds_give_no_verdict(tmp_path):
    """grpo beats ppo by exactly 0.1 on every stage seed: the paired differences have zero variance, so ttest_rel's t
    is infinite and p = 0 at any n; that is no evidence, so no verdict (the case that let n = 2 declare a winner).
    dpo shares only stage seeds 0, 1 with them: n = 2 < 3, no verdict, however large the gap."""
    for stage in range(3):
        _write_run(tmp_path, f"ppo_{stage}", "ppo", 0, 0.2 * stage, stage_seed=stage)
        _write_run(tmp_path, f"grpo_{stage}", "grpo", 0, 0.2 * stage + 0.1, stage_seed=stage)
    for stage, gold in [(0, 0.9), (1, 1.0)]:
        _write_run(tmp_path, f"dpo_{stage}", "dpo", 0, gold, stage_seed=stage)
    table = pairwise_table(load_summaries([str(tmp_path)]).summaries).set_index(["a", "b"])
    constant = table.loc[("grpo", "ppo")]
    assert constant["diff"] == pytest.approx(0.1) and math.isnan(constant["p_value"]) and math.isnan(constant["ci95"])
    assert constant["winner"] == "no verdict: zero variance (n = 3)"
    for pair in [("dpo", "grpo"), ("dpo", "ppo")]:
        assert table.loc[pair, "n"] == "2" and math.isnan(table.loc[pair, "p_value"])
        assert table.loc[pair, "winner"] == "no verdict: n < 3 (n = 2)"


def test_figure_has_one_line_per_algorithm_in_each_panel(sweep):
    """Each panel a line per algorithm; the SFT model (gold 0 at compute 0 in every fixture run) and, where the
    summaries say it, the task's best possible gold reward as horizontal lines; what the lines average in the title."""
    curves = load_runs([str(sweep)]).assign(task_best=0.9)
    fig = task_figure("toy", curves)
    curve, frontier, over = fig.axes
    assert set(curve.get_legend_handles_labels()[1]) == {"ppo", "dpo", "SFT model", "best possible"}
    assert set(over.get_legend_handles_labels()[1]) == {"ppo", "dpo"}
    flat = {line.get_label(): line.get_ydata()[0] for line in curve.lines if line.get_label() in ("SFT model", "best possible")}
    assert flat == {"SFT model": 0.0, "best possible": 0.9}
    assert curve.get_ylabel() == "gold reward" and frontier.get_xlabel().startswith("KL to reference")
    assert curve.xaxis.get_major_formatter()(4e12, 0) == "4 TFLOP"
    assert fig._suptitle.get_text() == "toy · model tiny · budget 400 FLOP per run · 3 runs per line (1 stage seeds)"


def test_cli_writes_every_table_and_plot(sweep, tmp_path):
    out = tmp_path / "results"
    assert main([str(sweep), "--out", str(out)]) == 0
    for name in ("summary", "compute_matched", "kl_matched", "memory", "pairwise"):
        for ext in ("csv", "md", "tex"):
            assert (out / f"{name}.{ext}").stat().st_size > 0
    assert (out / "toy.png").read_bytes()[:4] == b"\x89PNG" and (out / "toy.pdf").read_bytes()[:4] == b"%PDF"
    readme = (out / "README.md").read_text()
    assert "Runs read: 7 (1 diverged, 6 finished); skipped: 2." in readme
    assert f"Sweeps: `{sweep}` (7 runs)." in readme
    assert "For 2 groups they cover trainer seeds only (1 stage seed)" in readme
    assert "Pairwise, 1 pair: Welch's t-test" in readme and "paired t-test" not in readme
    assert "9_ppo_diverged" in readme and "7_running" in readme


def test_readme_says_what_the_intervals_cover(tmp_path):
    """Two groups of 3 × 2 stage × trainer seeds and one of a single stage seed: the README says so, and which tests ran."""
    sweep = tmp_path / "sweep"
    _write_stage_sweep(sweep, "ppo", PPO_3X2)
    _write_stage_sweep(sweep, "dpo", DPO_3X2)
    for seed, gold in enumerate([0.1, 0.2, 0.3]):
        _write_run(sweep, f"grpo_s{seed}", "grpo", seed, gold)
    assert main([str(sweep), "--out", str(tmp_path / "results")]) == 0
    readme = (tmp_path / "results" / "README.md").read_text()
    assert "For 2 groups they cover stage × trainer seeds (3 × 2)" in readme
    assert "For 1 group they cover trainer seeds only (1 stage seed)" in readme
    assert "Pairwise, 1 pair: a paired t-test" in readme and "Pairwise, 2 pairs: Welch's t-test" in readme
    assert "Taken at commit `abc123` (15 runs); with torch 2.13.0." in readme
    # the paper table: ppo's stage means 0.2, 0.5, 0.6 -> 0.433 ± 4.302653 · 0.208167 / √3 = 0.517
    paper = (tmp_path / "results" / "paper.md").read_text()
    assert "| 0.433 ± 0.517 " in paper and "nan" not in paper.lower()


def test_empty_input_says_so_and_fails(tmp_path, caplog):
    (tmp_path / "empty").mkdir()
    with caplog.at_level(logging.ERROR):
        assert main([str(tmp_path / "empty"), "--out", str(tmp_path / "r")]) == 1
    assert any("no runs found" in r.getMessage() for r in caplog.records)


def test_wandb_runs_become_the_same_frames(monkeypatch):
    """--wandb reads runs through wandb's public API; a stand-in API with three runs gives the same tables.
    Two ppo runs with β=0.1 (gold 0.1, 0.3: mean 0.2) are one group; a third with β=0.2 is its own row."""
    import wandb

    from bench.results import load_wandb

    class FakeRun:
        def __init__(self, algo, seed, gold, beta=0.1):
            self.config = {"algo": {"name": algo, "beta": beta}, "task": {"name": "toy"},
                           "model": {"preset": "tiny", "name": None}, "seed": seed, "stage_seed": 0,
                           "budget": {"unit": "flops", "amount": 400.0}}  # fmt: skip
            self.summary = {"status": "finished", "eval/gold_reward": gold, "compute/flops": 400.0, "_step": 3}
            self.path = ["me", "proj", f"{algo}{seed}{beta}"]
            self._history = [{"compute/flops": 0.0, "eval/gold_reward": 0.0}, {"compute/flops": 400.0, "eval/gold_reward": gold}]

        def scan_history(self):
            return iter(self._history)

    asked = []

    class FakeApi:
        def runs(self, path, filters=None):
            assert path == "me/proj"
            asked.append(filters)
            return [FakeRun("ppo", 0, 0.1), FakeRun("ppo", 1, 0.3), FakeRun("ppo", 0, 0.9, beta=0.2)]

    monkeypatch.setattr(wandb, "Api", FakeApi)
    load_wandb("me/proj", sweep="2026-11-22_default")
    assert asked == [{"tags": {"$in": ["sweep:2026-11-22_default"]}}]  # one sweep's runs only, filtered by wandb
    runs, curves = load_wandb("me/proj")
    table = summary_table(runs.summaries).set_index("algo.beta")
    assert list(table.index) == [0.1, 0.2]
    assert table.loc[0.1, "eval/gold_reward"] == pytest.approx(0.2) and table.loc[0.1, "n"] == 2
    assert table.loc[0.2, "eval/gold_reward"] == pytest.approx(0.9) and table.loc[0.2, "n"] == 1
    assert "_step" not in runs.summaries.columns
    matched = compute_matched_table(runs.summaries, curves).set_index(["algo.beta", "budget_fraction"])
    assert matched.loc[(0.1, 0.5), "eval/gold_reward"] == pytest.approx(0.1)


def test_a_copied_run_directory_is_one_run_not_two_seeds(sweep):
    """Two directories of one identity are one run (ppo stays n = 3, mean 0.2); the finished one is kept."""
    import shutil

    shutil.copytree(sweep / "0_ppo", sweep / "copy_of_0_ppo")
    summary = json.loads((sweep / "0_ppo" / "summary.json").read_text())
    (sweep / "0_ppo" / "summary.json").write_text(json.dumps(summary | {"status": "failed"}))  # the copy finished
    runs = load_summaries([str(sweep)])
    assert dict(runs.skipped)[str(sweep / "0_ppo")].startswith("the same identity")
    table = summary_table(runs.summaries).set_index("algo")
    assert table.loc["ppo", "n"] == 3 and table.loc["ppo", "eval/gold_reward"] == pytest.approx(0.2)


def test_tables_go_next_to_the_runs_unless_told_otherwise(sweep, tmp_path, monkeypatch):
    """Run from the repository root, the tool must not overwrite the committed results/: it writes in the sweep."""
    monkeypatch.chdir(tmp_path)
    assert main([str(sweep)]) == 0
    assert (sweep / "results" / "summary.csv").exists() and not (tmp_path / "results").exists()


def test_latex_is_escaped_and_no_cell_reads_nan(sweep, tmp_path):
    assert main([str(sweep), "--out", str(tmp_path / "r")]) == 0
    summary_tex = (tmp_path / "r" / "summary.tex").read_text()
    assert r"eval/gold\_reward" in summary_tex and "eval/gold_reward" not in summary_tex  # an underscore breaks LaTeX
    paper_tex = (tmp_path / "r" / "paper.tex").read_text()
    assert r"0.200 $\pm$ 0.248" in paper_tex and "±" not in paper_tex
    for table in (tmp_path / "r").glob("*.md"):
        assert "nan" not in table.read_text().lower(), table.name
    assert "models MiB" in (tmp_path / "r" / "paper.md").read_text()


def test_rankings_at_equal_flops_and_equal_seconds_differ_where_the_curves_cross(tmp_path):
    """Budget 400 FLOPs, both runs' last step overshooting to 440. ppo: slow, 0.2 at 200 FLOPs (20 s) and 0.8 at 440
    (200 s); dpo: fast, 0.3 at 200 (5 s) and 0.5 at 440 (10 s). At the budget: ppo 0.2 + 0.6 · 200/240 = 0.7, dpo
    0.3 + 0.2 · 200/240 = 0.4667. At 10 s (dpo's end, the most both reached): ppo 0.2 · 10/20 = 0.1, dpo 0.5."""
    root = tmp_path / "sweep"
    slow, fast = [(0, 0, 0), (200, 0.2, 20), (440, 0.8, 200)], [(0, 0, 0), (200, 0.3, 5), (440, 0.5, 10)]
    for seed in (0, 1):
        _write_run(root, f"ppo_{seed}", "ppo", seed, 0.7, curve=slow)
        _write_run(root, f"dpo_{seed}", "dpo", seed, 0.4667, curve=fast)
    table = ranking_table(load_summaries([str(root)]).summaries, load_runs([str(root)])).set_index("algo")
    assert table.loc["ppo", "at flops"] == 400 and table.loc["ppo", "at seconds"] == 10
    assert table.loc["ppo", "flops: mean"] == pytest.approx(0.7) and table.loc["dpo", "flops: mean"] == pytest.approx(0.3 + 0.2 * 200 / 240)
    assert table.loc["ppo", "seconds: mean"] == pytest.approx(0.1) and table.loc["dpo", "seconds: mean"] == pytest.approx(0.5)
    assert (table.loc["ppo", "flops: rank"], table.loc["ppo", "seconds: rank"]) == (1, 2)
    assert (table.loc["dpo", "flops: rank"], table.loc["dpo", "seconds: rank"]) == (2, 1)
    assert not table["agree"].any()
    # the same runs with dpo as slow as ppo: both budgets rank alike
    for seed in (0, 1):
        _write_run(tmp_path / "same", f"ppo_{seed}", "ppo", seed, 0.7, curve=slow)
        _write_run(tmp_path / "same", f"dpo_{seed}", "dpo", seed, 0.4667, curve=[(0, 0, 0), (200, 0.3, 100), (440, 0.5, 200)])
    same = str(tmp_path / "same")
    assert ranking_table(load_summaries([same]).summaries, load_runs([same]))["agree"].all()


def test_kl_matched_reads_each_frontier_at_equal_kl_and_never_beyond_it(tmp_path):
    """The fixture's KL is flops / 100. grpo: gold 0 → 0.3 → 0.5 → 0.8 at KL 0, 1.5, 2.5, 4, so at KL 2 it reads 0.4
    (halfway from 1.5 to 2.5) and at KL 4 0.8; dpo stops at KL 3 (0.6): 0.4 at KL 2, no row at KL 4 or beyond."""
    for seed in range(3):
        _write_run(tmp_path, f"{seed}_grpo", "grpo", seed, 0.8, curve=[(0.0, 0.0), (150.0, 0.3), (250.0, 0.5), (400.0, 0.8)])
    _write_run(tmp_path, "short", "dpo", 0, 0.6, curve=[(0.0, 0.0), (300.0, 0.6)])
    runs = load_summaries([str(tmp_path)]).summaries
    table = kl_matched_table(runs, load_runs([str(tmp_path)])).set_index(["algo", "kl_to_ref"])
    assert table.loc[("grpo", 2.0), "eval/gold_reward"] == pytest.approx(0.4)
    assert table.loc[("grpo", 4.0), "eval/gold_reward"] == pytest.approx(0.8)
    assert table.loc[("grpo", 0.5), "eval/gold_reward"] == pytest.approx(0.1)
    assert table.loc[("dpo", 2.0), "eval/gold_reward"] == pytest.approx(0.4)
    assert ("dpo", 4.0) not in table.index and ("grpo", 8.0) not in table.index  # never reached: no row, no NaN cell
    assert table.loc[("grpo", 2.0), "eval/gold_reward n"] == 3


@pytest.mark.latex
def test_every_latex_table_compiles_with_pdflatex(sweep, tmp_path):
    """Each .tex the results tool writes, \\input into a booktabs document, compiles (underscores, ±, ×, empty cells)."""
    import subprocess

    out = tmp_path / "results"
    assert main([str(sweep), "--out", str(out)]) == 0
    tables = sorted(out.glob("*.tex"))
    assert len(tables) >= 6
    for table in tables:
        doc = tmp_path / f"doc_{table.stem}.tex"
        doc.write_text(f"\\documentclass{{article}}\\usepackage{{booktabs}}\\begin{{document}}\\input{{{table}}}\\end{{document}}\n")
        done = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", doc.name], cwd=tmp_path, capture_output=True, text=True)
        assert done.returncode == 0, f"{table.name}: {[line for line in done.stdout.splitlines() if line.startswith('!')]}"


def test_a_group_computed_under_two_library_versions_is_marked_in_the_summary(tmp_path):
    """ppo's three seeds, one of them under transformers 5.24.0: its row says so; dpo's, all under 5.23.0, do not."""
    for seed in range(3):
        for algo in ("ppo", "dpo"):
            run = _write_run(tmp_path, f"{algo}_{seed}", algo, seed, 0.1 * seed)
            summary = json.loads((run / rundir.SUMMARY).read_text())
            newer = algo == "ppo" and seed == 2
            summary["execution"] = {"result_version": 2, "device": "cpu", "versions": {"torch": "2.13.0", "transformers": "5.24.0" if newer else "5.23.0"}}
            (run / rundir.SUMMARY).write_text(json.dumps(summary))
    table = summary_table(load_summaries([str(tmp_path)]).summaries).set_index("algo")
    assert table.loc["ppo", "mixed versions"] == "transformers 5.23.0 | 5.24.0"
    assert table.loc["dpo", "mixed versions"] != table.loc["dpo", "mixed versions"]  # NaN: nothing to mark
