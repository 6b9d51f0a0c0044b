"""The wandb workspace `rlhf-bench-dashboard` builds, checked offline on its spec."""

import json

from bench.dashboard import build_workspace, main, spec


def test_the_workspace_groups_by_configuration_and_plots_against_flops():
    built = spec(build_workspace("me", "bench", sweep="2026-11-22_default"))
    assert built["groupby"] == ["Group"]  # the run identity minus seeds: one line per configuration
    assert built["filters"] == "Metric(\"Tags\") in ['sweep:2026-11-22_default']"
    assert set(built["sections"]) == {"Comparison", "Frontier", "Cost", "Validation", "Training"}
    assert [p["y"] for p in built["sections"]["Validation"]] == [["val/gold_reward"], ["val/accuracy"]]
    lines = [p for panels in built["sections"].values() for p in panels if p["type"] == "LinePlot"]
    assert lines and all(p["x"] == "compute/flops" for p in lines) and built["x_axis"] == "compute/flops"
    comparison = [p["y"] for p in built["sections"]["Comparison"]]
    assert comparison == [["eval/gold_reward"], ["eval/accuracy"], ["eval/proxy_reward"], ["eval/kl_to_ref"]]
    frontier = built["sections"]["Frontier"][0]
    assert (frontier["type"], frontier["x"], frontier["y"]) == ("ScatterPlot", "eval/kl_to_ref", "eval/gold_reward")
    memory = next(p for p in built["sections"]["Cost"] if p["type"] == "BarPlot")
    assert "memory/critic/optimizer_bytes" in memory["metrics"]
    assert "perf/generation_share" in [y for p in built["sections"]["Cost"] if p["type"] == "LinePlot" for y in p["y"]]


def test_without_a_sweep_every_run_of_the_project_is_shown(capsys):
    assert main(["me/bench", "--print"]) == 0
    assert json.loads(capsys.readouterr().out)["filters"] == ""
