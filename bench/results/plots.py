"""Plots per task, a line per group: the task's score against compute, the reward-KL frontier, proxy against gold."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import EngFormatter, MaxNLocator  # noqa: E402

from bench.results.groups import distinguishing_keys, groups, label  # noqa: E402
from bench.results.stats import group_interval, interpolate_at  # noqa: E402

COLORS = {"ppo": "tab:blue", "grpo": "tab:orange", "dpo": "tab:green", "rloo": "tab:red", "reinforce_pp": "tab:purple", "best_of_n": "tab:brown"}
LINESTYLES = ("-", "--", ":", "-.")  # the groups of one algorithm share its colour and differ in line


def _mean_curve(curves: pd.DataFrame, x: str, y: str, grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and 95 % half-width (the rule of `units`) across one group's runs of y interpolated on a common x grid."""
    per_run = pd.DataFrame(
        [[c["stage_seed"].iloc[0]] + [interpolate_at(c, x, y, g) for g in grid] for _, c in curves.groupby("run_dir")],
        columns=["stage_seed", *range(len(grid))],
    )
    summary = [group_interval(per_run, i) for i in range(len(grid))]
    return np.array([m for m, _, _ in summary]), np.nan_to_num(np.array([h for _, h, _ in summary]))


def _point_intervals(of_group: pd.DataFrame, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Mean and 95 % half-width of `metric` at each evaluation point (the k-th evaluation of every run)."""
    at_point = of_group.assign(point=of_group.groupby("run_dir").cumcount())
    summary = [group_interval(rows, metric) for _, rows in at_point.groupby("point", sort=True)]
    return np.array([m for m, _, _ in summary]), np.nan_to_num(np.array([h for _, h, _ in summary]))


def task_figure(task: str, curves: pd.DataFrame) -> plt.Figure:
    """One task's three panels, a line per group: the task's score vs FLOPs (mean, 95 % band) with the SFT model
    and the best possible score as lines, the reward-KL frontier (95 % intervals both ways), proxy vs gold reward.
    The score is accuracy where the task has a checker, else the gold reward."""
    keys = distinguishing_keys(curves)
    evals = curves[(curves["task"] == task) & (curves["status"] == "finished")].dropna(subset=["eval/gold_reward"])
    metric = "eval/accuracy" if "eval/accuracy" in evals and evals["eval/accuracy"].notna().any() else "eval/gold_reward"
    name = "accuracy" if metric == "eval/accuracy" else "gold reward"
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.6))
    ax_curve, ax_frontier, ax_over = axes
    grid = np.linspace(0, evals.groupby("run_dir")["compute/flops"].max().min(), 50)  # where every run has a point
    seen: dict[str, int] = {}
    for header, of_group in groups(evals, keys):
        algo, line = header["algo"], label(header)
        style = {"color": COLORS.get(algo), "linestyle": LINESTYLES[seen.get(algo, 0) % len(LINESTYLES)]}
        seen[algo] = seen.get(algo, 0) + 1
        mean, ci = _mean_curve(of_group, "compute/flops", metric, grid)
        ax_curve.plot(grid, mean, label=line, **style)
        ax_curve.fill_between(grid, mean - ci, mean + ci, alpha=0.2, color=ax_curve.lines[-1].get_color())
        (kl, kl_ci), (score, score_ci) = _point_intervals(of_group, "eval/kl_to_ref"), _point_intervals(of_group, metric)
        ax_frontier.errorbar(kl, score, xerr=kl_ci, yerr=score_ci, marker="o", capsize=2, label=line, **style)
        (gold, _), (proxy, _) = _point_intervals(of_group, "eval/gold_reward"), _point_intervals(of_group, "eval/proxy_reward")
        ax_over.plot(gold, proxy, marker="o", label=line, **style)
    sft = evals.loc[evals["compute/flops"] == 0, metric].mean()
    if metric == "eval/accuracy":
        best = [1.0]
    else:  # the task's best gold reward, recorded in each summary (one value per task)
        best = evals["task_best"].dropna().unique() if "task_best" in evals else []
    for ax in (ax_curve, ax_frontier):
        ax.axhline(sft, color="grey", linestyle="--", linewidth=1, label="SFT model")
        if len(best) == 1:
            ax.axhline(best[0], color="black", linestyle=":", linewidth=1, label="best possible")
    ax_curve.xaxis.set_major_formatter(EngFormatter(unit="FLOP"))
    ax_curve.xaxis.set_major_locator(MaxNLocator(4))  # labels like "500 GFLOP" need the room
    ax_curve.set(xlabel="compute", ylabel=name, title=f"{name} vs compute (mean, 95 % CI)")
    ax_frontier.set(xlabel="KL to reference (nats per sequence)", ylabel=name, title="reward-KL frontier (95 % CI)")
    ax_over.set(xlabel="gold reward", ylabel="proxy reward (reward model)", title="proxy vs gold reward")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(_caption(task, evals))
    fig.tight_layout()
    return fig


def _caption(task: str, evals: pd.DataFrame) -> str:
    """Task, model(s), budget and how many runs and seeds each line averages."""
    runs = evals.drop_duplicates("run_dir")
    per_group = runs.groupby("group").agg(runs=("run_dir", "size"), stage_seeds=("stage_seed", "nunique"))
    models = ", ".join(sorted(map(str, runs["model"].unique())))
    amounts = sorted({b["amount"] for b in runs["budget"] if isinstance(b, dict)}) if "budget" in runs else []
    budget = ", ".join(EngFormatter(unit="FLOP")(a) for a in amounts) if amounts else "?"
    low, high = per_group["runs"].min(), per_group["runs"].max()
    stages = per_group["stage_seeds"].max()
    return f"{task} · model {models} · budget {budget} per run · {low if low == high else f'{low}-{high}'} runs per line ({stages} stage seeds)"


def save(fig, out: Path, name: str) -> list[Path]:
    """The figure as `name`.png and `name`.pdf in `out`, then closed."""
    written = [out / f"{name}.{ext}" for ext in ("png", "pdf")]
    for path in written:
        fig.savefig(path, dpi=150)
    plt.close(fig)
    return written


def plot_task(task: str, curves: pd.DataFrame, out: Path) -> list[Path]:
    return save(task_figure(task, curves), out, task)


def plot_profile(profile: pd.DataFrame, out: Path) -> list[Path]:
    """The performance profile (Agarwal et al. 2021, fig. 3): per group, the fraction of its stage-seed means,
    over all tasks, whose normalised score exceeds τ (0 = the SFT model, 1 = the best achievable)."""
    fig, ax = plt.subplots(figsize=(6, 4.2))
    for algo, rows in profile.groupby("algo", sort=True):
        ax.plot(rows["tau"], rows["fraction"], label=algo, color=COLORS.get(str(algo).split(" ")[0]))
    ax.axvline(0, color="grey", linestyle="--", linewidth=1, label="SFT model")
    ax.set(xlabel="normalised score τ", ylabel="fraction of stage seeds with score > τ", title="performance profile, all tasks")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save(fig, out, "profile")


def plot_best_so_far(table: pd.DataFrame, out: Path) -> list[Path]:
    """The tuning searches' best validation score so far against the trial, a line per task × algorithm."""
    fig, ax = plt.subplots(figsize=(6, 4.2))
    for (task, algo), rows in table.groupby(["task", "algo"], sort=True):
        ax.plot(rows["trial"], rows["best so far"], marker="o", label=f"{algo} ({task})", color=COLORS.get(algo))
    ax.set(xlabel="trial", ylabel="best validation score so far", title="tuning: best so far against trial")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save(fig, out, "best_so_far")
