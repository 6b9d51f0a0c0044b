"""Verdicts with power: the minimum detectable difference, Holm's correction, and the aggregates across tasks,
each against arithmetic worked out here or against rliable's own output."""

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench import rundir
from bench.results import load_summaries, main, pairwise_table
from bench.results.aggregate import (
    aggregate_table,
    improvement_table,
    iqm,
    mean,
    normalised,
    probability_of_improvement,
    stratified_interval,
)  # fmt: skip
from bench.results.stats import design_sd, holm, minimum_detectable_difference, seeds_for, variance_components
from tests.test_results import _write_run

spec = importlib.util.spec_from_file_location("power", Path(__file__).parents[1] / "scripts" / "power.py")
power = importlib.util.module_from_spec(spec)
spec.loader.exec_module(power)

T975_DF2, T80_DF2 = 4.302653, 1.060660  # Student t quantiles, 2 degrees of freedom
T975_DF32, T80_DF32, T975_DF33, T80_DF33 = 2.036933, 0.852998, 2.034515, 0.852649


def test_minimum_detectable_difference_of_a_paired_test_is_the_closed_form(tmp_path):
    """ppo - grpo = 0.5, 0.6, 0.7 on stage seeds 0, 1, 2: differences of standard deviation exactly 0.1, so the
    paired test's standard error is 0.1/√3 = 0.057735 on 2 degrees of freedom, and it detects with 80 % power at
    α = 0.05 a true difference of (t_.975,2 + t_.8,2)·se = (4.302653 + 1.060660)·0.057735 = 0.30966."""
    for stage, gap in enumerate([0.5, 0.6, 0.7]):
        _write_run(tmp_path, f"ppo_{stage}", "ppo", 0, 0.1 + gap, stage_seed=stage)
        _write_run(tmp_path, f"grpo_{stage}", "grpo", 0, 0.1, stage_seed=stage)
    (pair,) = pairwise_table(load_summaries([str(tmp_path)]).summaries).to_dict("records")
    assert pair["n"] == "3" and pair["mdd"] == pytest.approx((T975_DF2 + T80_DF2) * 0.1 / math.sqrt(3), rel=1e-5)
    assert pair["mdd"] == pytest.approx(0.30966, abs=1e-5)
    assert pair["mdd_holm"] == pair["mdd"]  # a family of one: Holm changes nothing


def test_seeds_for_a_difference_is_the_first_n_whose_mdd_reaches_it():
    """Differences of sd 0.1, a target of 0.05: at n = 33, (2.036933 + 0.852998)·0.1/√33 = 0.050307 > 0.05; at
    n = 34, (2.034515 + 0.852649)·0.1/√34 = 0.049514 ≤ 0.05. So 34 pairs; halving the sd needs 10."""
    assert minimum_detectable_difference(0.1 / math.sqrt(33), 32) == pytest.approx((T975_DF32 + T80_DF32) * 0.1 / math.sqrt(33), rel=1e-5)
    assert minimum_detectable_difference(0.1 / math.sqrt(34), 33) == pytest.approx((T975_DF33 + T80_DF33) * 0.1 / math.sqrt(34), rel=1e-5)
    assert minimum_detectable_difference(0.1 / math.sqrt(33), 32) > 0.05 >= minimum_detectable_difference(0.1 / math.sqrt(34), 33)
    assert seeds_for(0.1, 0.05) == 34
    assert seeds_for(0.05, 0.05) == 10


def test_holm_adjusts_four_p_values_as_worked_by_hand():
    """p = 0.01, 0.04, 0.03, 0.005 (m = 4), in order 0.005, 0.01, 0.03, 0.04: times 4, 3, 2, 1 gives 0.02, 0.03,
    0.06, 0.04, and monotone (each at least the one before) 0.02, 0.03, 0.06, 0.06. A test that did not run stays out."""
    adjusted = holm(pd.Series([0.01, 0.04, 0.03, 0.005, math.nan]))
    assert adjusted.iloc[:4].tolist() == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert math.isnan(adjusted.iloc[4])


def test_the_verdict_is_holms(tmp_path):
    """On 3 stage seeds, grpo - ppo = 0.10, 0.15, 0.20 (paired t = 0.15/(0.05/√3) = 5.196, p = 0.0351) and dpo - ppo =
    0.10, 0.14, 0.20 (t = 5.05, p = 0.037); dpo - grpo = 0, -0.01, 0 (p = 0.42). Two winners alone at 0.05; over the
    table's 3 tests Holm makes the smallest 3 × 0.0351 = 0.105, and none is left."""
    base = [0.1, 0.2, 0.3]
    golds = {"ppo": base, "grpo": [b + d for b, d in zip(base, [0.10, 0.15, 0.20])], "dpo": [b + d for b, d in zip(base, [0.10, 0.14, 0.20])]}
    for algo, values in golds.items():
        for stage, gold in enumerate(values):
            _write_run(tmp_path, f"{algo}_{stage}", algo, 0, gold, stage_seed=stage)
    table = pairwise_table(load_summaries([str(tmp_path)]).summaries).set_index(["a", "b"])
    assert (table["family"] == 3).all()
    assert table.loc[("grpo", "ppo"), "p_value"] == pytest.approx(0.0351, abs=5e-4)
    assert (table["p_value"] < 0.05).sum() == 2
    assert table.loc[("grpo", "ppo"), "p_holm"] == pytest.approx(3 * table.loc[("grpo", "ppo"), "p_value"])
    # the differences' sd is 0.05 for grpo - ppo: se 0.05/√3 on 2 df; Holm's strictest level over 3 tests is
    # 0.05/3, so (t_{1-0.05/6, 2} + t_.8,2)·se = (7.648804 + 1.060660)·0.028868 = 0.25142 (0.15483 for one test)
    assert table.loc[("grpo", "ppo"), "mdd_holm"] == pytest.approx(0.25142, abs=1e-5)
    assert table.loc[("grpo", "ppo"), "mdd"] == pytest.approx((T975_DF2 + T80_DF2) * 0.05 / math.sqrt(3), rel=1e-5)
    assert (table["p_holm"] >= 0.05).all()
    assert table["winner"].str.startswith("no significant difference").all()


# rliable 1.2.0's output (with pandas 2.3.3 and arch 7.2.0, the last versions it imports with) for SCORES, reps=50000,
# random_state=np.random.RandomState(0), one stream across the keys in this order): get_interval_estimates with
# aggregate_iqm and aggregate_mean, and with probability_of_improvement over {"a,b": (a, b), "a,a": (a, a)}.
# Scores are [runs, tasks], as rliable takes them. Rerun in a venv with rliable==1.2.0 "pandas<3" "arch<8".
SCORES = {"a": np.array([[0.1, 0.5], [0.3, 0.7], [0.2, 0.9], [0.6, 0.4], [0.5, 0.8]]),
          "b": np.array([[0.0, 0.2], [0.1, 0.4], [0.3, 0.1], [0.2, 0.3], [0.4, 0.2]])}  # fmt: skip
RLIABLE = {
    "a": {"IQM": (0.5, 0.36667, 0.63333), "mean": (0.5, 0.39, 0.61)},
    "b": {"IQM": (0.21667, 0.13333, 0.31667), "mean": (0.22, 0.15, 0.30)},
    "P(a > b)": (0.84, 0.65, 0.98), "P(a > a)": (0.5, 0.25, 0.75),
}


def test_aggregates_equal_rliables_own_output():
    """Point estimates exactly; the stratified bootstrap's percentile bounds within its Monte Carlo error (another
    random stream: scipy's, not arch's), 0.02 on scores that move in steps of 0.033."""
    tasks = {name: list(scores.T) for name, scores in SCORES.items()}
    for name in ("a", "b"):
        for what, statistic in (("IQM", iqm), ("mean", mean)):
            point, low, high = RLIABLE[name][what]
            assert float(statistic(*tasks[name])) == pytest.approx(point, abs=1e-5)
            assert stratified_interval(statistic, tasks[name], reps=50_000) == pytest.approx((low, high), abs=0.02)
    for label, x, y in (("P(a > b)", "a", "b"), ("P(a > a)", "a", "a")):
        point, low, high = RLIABLE[label]
        assert float(probability_of_improvement(*tasks[x], *tasks[y])) == pytest.approx(point, abs=1e-9)
        assert stratified_interval(probability_of_improvement, [*tasks[x], *tasks[y]], reps=50_000) == pytest.approx((low, high), abs=0.02)


def test_iqm_is_the_mean_of_the_middle_half():
    """Eight scores 0..7 over two tasks: the middle half is 2, 3, 4, 5, mean 3.5 (the plain mean is 3.5 too, so
    take 0, 1, 2, 3, 4, 5, 6, 100: IQM still 3.5, mean 15.125)."""
    assert float(iqm(np.array([0, 1, 2, 3.0]), np.array([4, 5, 6, 100.0]))) == pytest.approx(3.5)
    assert float(mean(np.array([0, 1, 2, 3.0]), np.array([4, 5, 6, 100.0]))) == pytest.approx(15.125)


def _two_task_sweep(root):
    """ppo and grpo on two tasks × 3 stage seeds; SFT 0.2, 0.3, 0.4 (by stage seed) and best 1.0 on `toy`, SFT -1,
    -0.9, -0.8 and best 3 on `other`. Normalised by its own stage seed's SFT model, ppo scores 0.5 + 0.01 · stage seed
    and grpo 0.25 + 0.01 · stage seed (by the task's mean SFT they would not): ppo improves on grpo with probability 1."""
    for task, sft0, best in (("toy", 0.2, 1.0), ("other", -1.0, 3.0)):
        for stage in range(3):
            sft = sft0 + 0.1 * stage
            for algo, share in (("ppo", 0.5 + 0.01 * stage), ("grpo", 0.25 + 0.01 * stage)):
                run = _write_run(root, f"{task}_{algo}_{stage}", algo, 0, sft + share * (best - sft), stage_seed=stage)
                summary = json.loads((run / rundir.SUMMARY).read_text())
                config = json.loads((run / rundir.CONFIG).read_text()) | {"task": {"name": task}}
                summary |= {"task": task, "task_best": best, "sft": {"eval/gold_reward": sft}, "identity": rundir.identity(config),
                            "group": rundir.group(config)}  # fmt: skip
                (run / rundir.CONFIG).write_text(json.dumps(config))
                (run / rundir.SUMMARY).write_text(json.dumps(summary))


def test_aggregate_tables_normalise_per_task_and_order_the_algorithms(tmp_path):
    _two_task_sweep(tmp_path / "sweep")
    runs = load_summaries([str(tmp_path / "sweep")]).summaries
    table = aggregate_table(runs).set_index("algo")
    assert table.loc["ppo", "mean"] == pytest.approx(0.51) and table.loc["grpo", "mean"] == pytest.approx(0.26)
    assert table.loc["ppo", "tasks"] == 2 and table.loc["ppo", "n per task"] == "3, 3"
    assert table.loc["ppo", "IQM low"] <= table.loc["ppo", "IQM"] <= table.loc["ppo", "IQM high"]
    improvement = improvement_table(runs).set_index(["x", "y"])
    assert improvement.loc[("ppo", "grpo"), "P(X > Y)"] == 1.0 and improvement.loc[("grpo", "ppo"), "P(X > Y)"] == 0.0


def test_a_task_of_one_value_has_no_interval_and_an_sft_model_at_the_best_no_score(tmp_path):
    """scipy's bootstrap cannot resample one value (it raises): the interval is NaN, not an error or a point; and a
    run whose SFT model already scores the best has no headroom: its normalised score is left out, not ±inf."""
    assert all(math.isnan(b) for b in stratified_interval(mean, [np.array([0.2]), np.array([0.1, 0.4])]))
    for stage, (gold, sft) in enumerate([(1.0, 1.0), (0.6, 0.2)]):
        run = _write_run(tmp_path, f"ppo_{stage}", "ppo", 0, gold, stage_seed=stage)
        summary = json.loads((run / rundir.SUMMARY).read_text()) | {"task_best": 1.0, "sft": {"eval/gold_reward": sft}}
        (run / rundir.SUMMARY).write_text(json.dumps(summary))
    assert normalised(load_summaries([str(tmp_path)]).summaries)["score"].tolist() == pytest.approx([0.5])


def test_results_of_several_tasks_hold_the_aggregate_table_and_profile(tmp_path):
    _two_task_sweep(tmp_path / "sweep")
    assert main([str(tmp_path / "sweep"), "--out", str(tmp_path / "out")]) == 0
    for name in ("aggregate.csv", "improvement.csv", "task_scale.csv", "profile.png", "sft.csv"):
        assert (tmp_path / "out" / name).exists(), name
    readme = (tmp_path / "out" / "README.md").read_text()
    assert "## Across tasks" in readme and "![performance profile](profile.png)" in readme
    one_task = tmp_path / "one"
    for stage in range(3):
        _write_run(one_task, f"ppo_{stage}", "ppo", 0, 0.5, stage_seed=stage)
    assert main([str(one_task), "--out", str(tmp_path / "out1")]) == 0
    assert not (tmp_path / "out1" / "aggregate.csv").exists() and "## Across tasks" not in (tmp_path / "out1" / "README.md").read_text()


def test_variance_components_of_a_hand_worked_pilot():
    """d = 1, 3 on stage seed 0; 2, 2 on 1; 4, 6 on 2. Within: (2 + 0 + 2) / 3 degrees of freedom = 4/3. The stage
    means 2, 2, 5 have variance 6/2 = 3, of which within/2 = 2/3 is their trainer seeds': between 7/3. A stage seed's
    mean over 1 trainer seed then has sd √(7/3 + 4/3) = √(11/3), over 2, √(7/3 + 2/3) = √3. Unbalanced, stage seed 1
    with the one value 2: within (2 + 2) / 2 = 2 from stage seeds 0 and 2; the means 2, 2, 5 carry within · mean(1/2,
    1, 1/2) = 4/3 of it: between 3 - 4/3 = 5/3. Without a second trainer seed anywhere the two parts are one: the
    variance of the values, 42/9/2 = 7/3 for 1, 2, 4, at k = 1 only."""
    pilot = pd.DataFrame({"stage_seed": [0, 0, 1, 1, 2, 2], "value": [1.0, 3.0, 2.0, 2.0, 4.0, 6.0]})
    between, within = variance_components(pilot)
    assert (between, within) == pytest.approx((7 / 3, 4 / 3))
    assert design_sd(between, within, 1) == pytest.approx(math.sqrt(11 / 3)) and design_sd(between, within, 2) == pytest.approx(math.sqrt(3))
    assert variance_components(pilot.drop(index=3)) == pytest.approx((5 / 3, 2))
    between, within = variance_components(pd.DataFrame({"stage_seed": [0, 1, 2], "value": [1.0, 2.0, 4.0]}))
    assert between == pytest.approx(7 / 3) and math.isnan(within)
    assert design_sd(between, within, 1) == pytest.approx(math.sqrt(7 / 3)) and math.isnan(design_sd(between, within, 2))


def _pilot(root, build_s: int = 0):
    """ppo 0.5 everywhere; dpo 0.5 + b_s ± 0.05 on trainer seeds 0 and 1 of stage seed s, b = 0, 0.1, -0.1, 0.2, -0.2.
    The difference's within variance is 0.05² · 2 = 0.005; its stage means b have variance 0.1/4 = 0.025, of which
    0.005/2 is the trainer seeds': between 0.0225. Runs take 10 s (seed 0) and 11 s (seed 1); each stage seed's
    stages take `build_s`, logged by its first run as bench/cache.py does. Beside them, what the pilot must leave
    out: rloo (not in the comparison) and a stage seed 7 (not the pilot's) with a difference of 5."""
    for stage, b in enumerate([0.0, 0.1, -0.1, 0.2, -0.2]):
        for seed, w in ((0, 0.05), (1, -0.05)):
            first = _write_run(root, f"ppo_{stage}_{seed}", "ppo", seed, 0.5, stage_seed=stage)
            _write_run(root, f"dpo_{stage}_{seed}", "dpo", seed, 0.5 + b + w, stage_seed=stage)
            if seed == 0 and build_s:
                (first / "app.log").write_text(f"[2026-12-06 13:57:46,155][bench.cache][INFO] - built sft abc in {build_s} s\n")
        _write_run(root, f"rloo_{stage}", "rloo", 0, 0.9, stage_seed=stage)
    _write_run(root, "ppo_7", "ppo", 0, 5.0, stage_seed=7)
    _write_run(root, "dpo_7", "dpo", 0, 0.0, stage_seed=7)


def test_power_sizes_each_design_from_the_pilots_components_and_checks_the_config(tmp_path, capsys):
    """At 1 trainer seed the difference's sd is √(0.0225 + 0.005), at 2 √(0.0225 + 0.0025); each gets the stage seeds
    `seeds_for` gives it. At 21 s of runs a stage seed for 1 trainer seed and 42 s for 2 the cheaper is 1 trainer seed.
    `--check` exits 3 until the config's sweep is that design, and only then writes it for the headline."""
    _pilot(tmp_path / "pilot")
    n1, n2 = seeds_for(math.sqrt(0.0275), 0.05), seeds_for(math.sqrt(0.025), 0.05)
    assert n2 < n1 < 2 * n2  # fewer stage seeds at 2 trainer seeds, but more runs
    config = tmp_path / "config.yaml"
    config.write_text("hydra:\n  sweeper:\n    params:\n      algo: ppo,dpo\n      stage_seed: range(0,16)\n      seed: 0\n")
    out = tmp_path / "out"
    argv = [str(tmp_path / "pilot"), "--stage-seeds=0,1,2,3,4", "--config", str(config), "--check", "--out", str(out)]
    assert power.main(argv) == 3
    printed = capsys.readouterr()
    assert [line.split("|")[2:4] for line in printed.out.splitlines() if line.startswith("| toy")] == [[" dpo ", " ppo "]]
    assert "rloo" not in printed.out
    runs = power.pilot_runs([str(tmp_path / "pilot")])
    (pair,) = power.pairs(runs[runs["stage_seed"] < 5], "eval/gold_reward", 0.05).query("b == 'ppo'").to_dict("records")
    assert (pair["a"], pair["stage seeds"], pair["trainer seeds"]) == ("dpo", 5, 2)
    assert pair["sd between stage seeds"] == pytest.approx(0.15) and pair["sd within a stage seed"] == pytest.approx(math.sqrt(0.005))
    assert (pair["n, 1 trainer seed"], pair["n, 2 trainer seeds"]) == (n1, n2)
    assert f"The design: {n1} stage seeds × 1 trainer seed, {n1 * 2} runs" in printed.out
    assert "Costs per stage seed: one trainer seed's runs (each algorithm's mean seconds), toy 21 s; its stages' builds, toy not logged (costed 0)." in printed.out
    assert f"not the design: set hydra.sweeper.params stage_seed: range(0,{n1}) and seed: 0," in printed.err
    assert "Taken at commit `abc123`" in (out / "README.md").read_text() and not (out / "design.json").exists()
    config.write_text(config.read_text().replace("range(0,16)", f"range(0,{n1})"))
    assert power.main(argv) == 0
    assert json.loads((out / "design.json").read_text()) == pytest.approx({"trainer seeds": 1, "stage seeds": n1, "runs": 2 * n1, "CPU h": n1 * 21 / 3600, "difference": 0.05})


def test_power_takes_2_trainer_seeds_where_the_stage_builds_make_them_cheaper(tmp_path, capsys):
    """With 1 000 s of logged stage builds a stage seed, 1 trainer seed costs n1 · 1 021 s and 2 cost n2 · 1 042 s: 2.
    A pilot of one stage seed sizes nothing, and `--check` says so (exit 2)."""
    _pilot(tmp_path / "pilot", build_s=1000)
    n1, n2 = seeds_for(math.sqrt(0.0275), 0.05), seeds_for(math.sqrt(0.025), 0.05)
    assert n2 * 1042 < n1 * 1021
    config = tmp_path / "config.yaml"
    config.write_text(f"hydra:\n  sweeper:\n    params:\n      algo: ppo,dpo\n      stage_seed: range(0,{n2})\n      seed: 0,1\n")
    assert power.main([str(tmp_path / "pilot"), "--stage-seeds=0,1,2,3,4", "--config", str(config), "--check"]) == 0
    assert f"The design: {n2} stage seeds × 2 trainer seeds, {n2 * 4} runs, about {n2 * 1042 / 3600:.1f} CPU h" in capsys.readouterr().out
    assert power.main([str(tmp_path / "pilot"), "--stage-seeds=0", "--config", str(config), "--check"]) == 2
    assert "No design" in capsys.readouterr().out


def test_the_power_pilot_takes_a_tune_directorys_finals_of_its_best_configuration_only(tmp_path):
    """A search extended by more trials found another best, and its finals ran beside the first pick's in final/:
    the pilot reads the best's (as the tuned table does), and refuses a pilot that mixes two settings of one algorithm."""
    tune = tmp_path / "tune"
    for trial, (lr, val) in enumerate([(1e-3, 0.3), (2e-3, 0.6)]):
        run = _write_run(tune / "search" / "ppo", f"t{trial}", "ppo", 0, 0.0, stage_seed=1000, lr=lr)
        summary = json.loads((run / rundir.SUMMARY).read_text())
        (run / rundir.SUMMARY).write_text(json.dumps(summary | {"objective": "val/gold_reward", "final": summary["final"] | {"val/gold_reward": val}}))
        (run / ".hydra").mkdir()
        (run / ".hydra" / "overrides.yaml").write_text(f"- algo.lr={lr}\n")
        for stage in range(3):
            _write_run(tune / "final" / "ppo", f"ppo_{lr}_{stage}", "ppo", 1, 0.5, stage_seed=stage, lr=lr)
    finals = power.pilot_runs([str(tune)])
    assert len(finals) == 3 and {json.loads((Path(d) / rundir.CONFIG).read_text())["algo"]["lr"] for d in finals["run_dir"]} == {2e-3}
    with pytest.raises(SystemExit, match="several configurations of toy ppo"):
        power.pilot_runs([str(tune / "final")])
