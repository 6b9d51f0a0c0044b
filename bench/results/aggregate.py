"""Across tasks: normalised scores, their IQM and mean with stratified bootstrap 95 % intervals, the probability
of improvement of each pair, and performance profiles (Agarwal et al. 2021, "Deep RL at the Edge of the
Statistical Precipice").

Normalised per task and per run: (final - SFT) / (best - SFT), where SFT is the run's own stage seed's SFT
model on the same test prompts (`sft/<metric>`, 0) and best the task's best achievable score (`task_best`, 1).
The units are stage-seed means (the runs of one stage seed share its SFT model and reward model), and the
bootstrap resamples them within each task (stratified), as rliable does.

Why scipy's `bootstrap` and not rliable: rliable 1.2.0 needs arch < 8, arch 7 does not import under pandas 3
(TypeError in its `deprecate_kwarg`), and under arch 8 rliable's own `get_interval_estimates` fails (arch 8
refuses its `random_state` argument). `scipy.stats.bootstrap` given one sample per task resamples each
independently: the stratified bootstrap. tests/test_verdicts.py holds rliable's own output (computed beside
pandas 2 and arch 7) for a synthetic input, and these functions agree with it within the Monte Carlo error.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
from scipy import stats

from bench.results.groups import distinguishing_keys, groups, label
from bench.results.stats import ALPHA

REPS = 20_000
SEED = 0
TAUS = np.linspace(-0.5, 1.5, 81)
"""Normalised scores at which the performance profile is read (the fraction of units above each)."""


def iqm(*tasks: np.ndarray, axis: int = -1) -> np.ndarray:
    """Interquartile mean of every task's scores together: the mean of their middle 50 % (scipy's trim_mean,
    25 % cut a side). Vectorised over leading axes, as `stratified_interval` calls it."""
    return stats.trim_mean(np.concatenate(tasks, axis=axis), 0.25, axis=axis)


def mean(*tasks: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(np.concatenate(tasks, axis=axis), axis=axis)


def probability_of_improvement(*tasks: np.ndarray, axis: int = -1) -> np.ndarray:
    """P(X > Y) averaged over tasks, the first half of `tasks` being X's and the second Y's: per task the share of
    (x, y) pairs with x > y, a tie counting ½ (the Mann-Whitney U over len(x)·len(y)); X against itself is 0.5."""
    k = len(tasks) // 2
    per_task = [
        np.mean((x[..., :, None] > y[..., None, :]) + 0.5 * (x[..., :, None] == y[..., None, :]), axis=(-2, -1))
        for x, y in zip((np.moveaxis(t, axis, -1) for t in tasks[:k]), (np.moveaxis(t, axis, -1) for t in tasks[k:]))
    ]  # fmt: skip
    return np.mean(per_task, axis=0)


def stratified_interval(statistic, samples: list[np.ndarray], seed: int = SEED, reps: int = REPS) -> tuple[float, float]:
    """The 95 % percentile interval of `statistic(*samples)` under the bootstrap that resamples each sample (task)
    on its own. A task with one value cannot be resampled: no interval (NaN). A statistic of constant samples has
    no spread: its interval is the point."""
    if any(len(s) < 2 for s in samples):
        return math.nan, math.nan
    if all(np.ptp(s) == 0 for s in samples):
        point = float(statistic(*samples))
        return point, point
    result = stats.bootstrap(samples, statistic, n_resamples=reps, confidence_level=1 - ALPHA, method="percentile",
                             vectorized=True, random_state=np.random.default_rng(seed))  # fmt: skip
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def normalised(runs: pd.DataFrame, metric: str = "eval/gold_reward") -> pd.DataFrame:
    """One row per finished run with headroom to normalise by: task, label, stage seed and its normalised score."""
    done = runs[runs["status"] == "finished"]
    keys = distinguishing_keys(done)
    rows = []
    for header, of_group in groups(done, keys):
        sft, best = of_group[f"sft/{metric}"].astype(float), of_group["task_best"].astype(float)
        # an SFT model at (or above) the best leaves no headroom to normalise by: no score, not ±inf
        score = ((of_group[metric].astype(float) - sft) / (best - sft)).where(best - sft > 1e-9)
        rows += [{"task": header["task"], "label": label(header), "stage_seed": s, "score": v} for s, v in zip(of_group["stage_seed"], score)]
    return pd.DataFrame(rows, columns=["task", "label", "stage_seed", "score"]).dropna(subset=["score"])


def units_by_label(scores: pd.DataFrame) -> dict[str, list[np.ndarray]]:
    """Per group label present in every task: one array per task (in task order) of its stage-seed means."""
    tasks = sorted(scores["task"].unique())
    labels = [g for g, of in scores.groupby("label") if set(of["task"]) == set(tasks)]
    means = scores.groupby(["label", "task", "stage_seed"])["score"].mean()
    return {g: [means[g][t].to_numpy(float) for t in tasks] for g in sorted(labels)}


def aggregate_table(runs: pd.DataFrame, metric: str = "eval/gold_reward") -> pd.DataFrame:
    """Per group present in every task: IQM and mean of the normalised scores with stratified bootstrap 95 % CIs."""
    scores = normalised(runs, metric)
    rows = []
    for name, per_task in units_by_label(scores).items():
        row = {"algo": name, "tasks": len(per_task), "n per task": ", ".join(str(len(u)) for u in per_task)}
        for what, statistic in (("IQM", iqm), ("mean", mean)):
            row[what] = float(statistic(*per_task))
            row[f"{what} low"], row[f"{what} high"] = stratified_interval(statistic, per_task)
        rows.append(row)
    return pd.DataFrame(rows, columns=["algo", "tasks", "n per task", "IQM", "IQM low", "IQM high", "mean", "mean low", "mean high"])


def improvement_table(runs: pd.DataFrame, metric: str = "eval/gold_reward") -> pd.DataFrame:
    """P(X > Y) for each ordered pair of groups present in every task, with its stratified bootstrap 95 % CI
    (X's and Y's units resampled within each task, independently)."""
    units = units_by_label(normalised(runs, metric))
    rows = []
    for x, y in itertools.permutations(units, 2):
        point = float(probability_of_improvement(*units[x], *units[y]))
        low, high = stratified_interval(probability_of_improvement, [*units[x], *units[y]])
        rows.append({"x": x, "y": y, "P(X > Y)": point, "low": low, "high": high})
    return pd.DataFrame(rows, columns=["x", "y", "P(X > Y)", "low", "high"])


def performance_profile(runs: pd.DataFrame, metric: str = "eval/gold_reward") -> pd.DataFrame:
    """Per group present in every task and τ in `TAUS`: the fraction of its units (over all tasks) whose
    normalised score exceeds τ."""
    units = units_by_label(normalised(runs, metric))
    rows = [{"algo": g, "tau": t, "fraction": float(np.mean(np.concatenate(u) > t))} for g, u in units.items() for t in TAUS]
    return pd.DataFrame(rows, columns=["algo", "tau", "fraction"])


def task_scale(runs: pd.DataFrame, metric: str = "eval/gold_reward") -> pd.DataFrame:
    """What 0 and 1 mean per task: the SFT score (mean over its stage seeds) and the best achievable."""
    done = runs[runs["status"] == "finished"]
    rows = []
    for task, of_task in done.groupby("task", sort=True):
        sft = of_task.groupby("stage_seed")[f"sft/{metric}"].first()
        rows.append({"task": task, "metric": metric, "0 = SFT (mean over stage seeds)": float(sft.mean()),
                     "SFT per stage seed": ", ".join(f"{v:.3f}" for v in sft), "1 = best": float(of_task["task_best"].iloc[0])})  # fmt: skip
    return pd.DataFrame(rows)


def spans_tasks(runs: pd.DataFrame) -> bool:
    done = runs[runs["status"] == "finished"]
    return not done.empty and done["task"].nunique() > 1 and bool(done["task_best"].astype(float).notna().all())
