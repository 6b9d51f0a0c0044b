"""Tables, one row per group: summary (and its paper form), compute-matched, memory, pairwise."""

from __future__ import annotations

import itertools
import json
import math

import pandas as pd

from bench.results.groups import distinguishing_keys, groups, label
from bench.results.stats import (
    ALPHA,
    PAIRED,
    coverage,
    group_interval,
    holm,
    interpolate_at,
    minimum_detectable_difference,
    paired,
    stage_means,
    units,
    welch,
)

FINAL_METRICS = [
    "eval/gold_reward", "eval/proxy_reward", "eval/kl_to_ref", "eval/win_rate_vs_sft",
    "eval/length", "eval/accuracy", "compute/flops", "compute/seconds",
]  # fmt: skip

FRACTIONS = (0.25, 0.5, 0.75, 1.0)
KL_POINTS = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
"""KL to the reference (nats per sequence) at which `kl_matched_table` reads each run's frontier."""



def _finished(runs: pd.DataFrame) -> pd.DataFrame:
    return runs[runs["status"] == "finished"]


def summary_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Per group: mean and 95 % interval of each final metric over finished runs, n and what it covers; counts of the rest."""
    keys = distinguishing_keys(runs)
    peak_cols = [c for c in runs.columns if c.startswith("memory/peak_bytes/")]
    model_cols = [c for c in runs.columns if c.startswith("memory/") and c.endswith(("param_bytes", "grad_bytes", "optimizer_bytes"))]
    rows = []
    for header, of_group in groups(runs, keys):
        done = _finished(of_group)
        n, covered = coverage(done["stage_seed"])
        row = header | {
            "n": n, "covers": covered, "runs": len(done),
            "diverged": int((of_group["status"] == "diverged").sum()), "failed": int((of_group["status"] == "failed").sum()),
        }  # fmt: skip
        if mixed := mixed_versions(done):
            row["mixed versions"] = mixed
        if peak_cols:
            done = done.assign(**{"memory/peak_bytes": done[peak_cols].max(axis=1)})
        if model_cols:
            done = done.assign(**{"memory/models_bytes": done[model_cols].fillna(0).sum(axis=1)})
        for metric in [m for m in FINAL_METRICS + ["data/epochs", "wall_s", "memory/peak_bytes", "memory/models_bytes"] if m in done.columns]:
            row[metric], row[f"{metric} ±"], _ = group_interval(done, metric)
        rows.append(row)
    return pd.DataFrame(rows, columns=_columns(rows, keys))


def mixed_versions(runs: pd.DataFrame) -> str:
    """'transformers 5.23.0 | 5.24.0' where a group's runs were computed under another execution (bench/rundir.py: the
    versions of `COMPUTATION_PACKAGES`, `RESULT_VERSION`, the device): their mean is of two computations, and the
    table says so in its `mixed versions` column (absent where no group mixes); empty where they agree."""
    if "computed_under" not in runs or runs["computed_under"].nunique() < 2:
        return ""
    versions = pd.DataFrame([json.loads(v) for v in runs["computed_under"]])
    return "; ".join(f"{lib} {' | '.join(sorted(versions[lib].fillna('unrecorded').astype(str).unique()))}"
                     for lib in versions.columns if versions[lib].fillna("unrecorded").nunique() > 1)  # fmt: skip


MIB = 2**20
PAPER_COLUMNS = {  # metric -> (header, decimals, scale)
    "eval/gold_reward": ("gold reward", 3, 1), "eval/accuracy": ("accuracy", 3, 1), "eval/proxy_reward": ("proxy reward", 2, 1),
    "eval/kl_to_ref": ("KL to ref", 1, 1), "eval/win_rate_vs_sft": ("win rate vs SFT", 2, 1), "data/epochs": ("epochs", 1, 1),
    "compute/seconds": ("train s", 0, 1),
    "memory/models_bytes": ("models MiB", 1, MIB), "memory/peak_bytes": ("peak MiB", 0, MIB),
}  # fmt: skip


def _cell(mean: float, ci: float, decimals: int, scale: float = 1) -> str:
    if math.isnan(mean):
        return ""
    mean, ci = mean / scale, ci / scale
    return f"{mean:.{decimals}f}" if math.isnan(ci) else f"{mean:.{decimals}f} ± {ci:.{decimals}f}"


def bracketed(mean: float, low: float, high: float, decimals: int = 3) -> str:
    """A point with its interval, `0.510 [0.502, 0.517]`: the point alone where there is no interval (one value a task)."""
    return f"{mean:.{decimals}f}" if math.isnan(low) else f"{mean:.{decimals}f} [{low:.{decimals}f}, {high:.{decimals}f}]"


def blank_missing(df: pd.DataFrame) -> pd.DataFrame:
    """The table for reading: an empty cell where a value does not exist (not `nan`)."""
    return df.astype(object).where(df.notna(), "")


def markdown(df: pd.DataFrame) -> str:
    return blank_missing(df).to_markdown(index=False, floatfmt=".4g")


def paper_table(summary: pd.DataFrame) -> pd.DataFrame:
    """The summary as a paper shows it: one `mean ± 95 % CI` cell per metric, n and what the interval covers."""
    head = [c for c in summary.columns if c not in ("n", "covers") and not c.startswith(("eval/", "compute/", "data/", "memory/", "wall_s"))]
    head = [c for c in head if c not in ("runs", "diverged", "failed")]
    table = summary[head + ["n", "covers"]].copy()
    for metric, (name, decimals, scale) in PAPER_COLUMNS.items():
        if metric in summary and summary[metric].notna().any():
            table[name] = [_cell(m, c, decimals, scale) for m, c in zip(summary[metric], summary[f"{metric} ±"])]
    return table


def _columns(rows: list[dict], keys: list[str]) -> list[str]:
    """task, algo, the distinguishing keys (NaN where a group lacks one), then the rest in first-seen order."""
    head = ["task", "algo", *keys]
    return head + [c for c in dict.fromkeys(c for row in rows for c in row) if c not in head]


def compute_matched_table(runs: pd.DataFrame, curves: pd.DataFrame) -> pd.DataFrame:
    """Per group and fraction of the budget: eval/gold_reward (and eval/accuracy) read off each run's curve, then its interval."""
    return _read_off(runs, curves, "compute/flops", "budget_fraction", lambda run, curve: [(f, f * _budget_flops(run, curve)) for f in FRACTIONS])


def kl_matched_table(runs: pd.DataFrame, curves: pd.DataFrame) -> pd.DataFrame:
    """Per group and KL to the reference: the score read off each run's reward-KL frontier (its evaluations, the
    SFT model at KL 0 first, ordered by KL), then its interval: Gao et al.'s comparison, RL against best-of-N,
    at equal KL. A run whose evaluations never reached a KL has no value there (never extrapolated), and a KL
    no run of a group reached has no row."""
    table = _read_off(runs, curves, "eval/kl_to_ref", "kl_to_ref", lambda run, curve: [(k, k) for k in KL_POINTS])
    return table[table["eval/gold_reward n"] > 0].reset_index(drop=True) if len(table) else table


def _read_off(runs: pd.DataFrame, curves: pd.DataFrame, x: str, column: str, points) -> pd.DataFrame:
    """The metrics at each `(label, x value)` of `points(run, curve)`, interpolated on each run's curve, then per group
    and label the interval over the runs that reach it (`column` holds the label)."""
    keys = distinguishing_keys(runs)
    evals = curves.dropna(subset=["eval/gold_reward"]) if "eval/gold_reward" in curves else curves.iloc[0:0]
    metrics = [m for m in ("eval/gold_reward", "eval/accuracy") if m in evals and evals[m].notna().any()]
    out = []
    for header, of_group in groups(_finished(runs), keys):
        per_run = []
        for run in of_group.itertuples(index=False):
            curve = evals[evals["run_dir"] == run.run_dir]
            for at_label, at in points(run, curve):
                values = {m: interpolate_at(curve, x, m, at) for m in metrics}
                per_run.append({"stage_seed": run.stage_seed, column: at_label} | values)
        for at_label, at in pd.DataFrame(per_run).groupby(column, sort=True):
            # a run that stopped short of this point has no value and leaves the interval
            measured = at.dropna(subset=["eval/gold_reward"]) if "eval/gold_reward" in at else at.iloc[0:0]
            row = header | {column: at_label, "covers": coverage(measured["stage_seed"])[1]}
            for metric in metrics:
                row[metric], row[f"{metric} ±"], row[f"{metric} n"] = group_interval(at, metric)
            out.append(row)
    return pd.DataFrame(out, columns=_columns(out, keys))


def _budget_flops(run, curve: pd.DataFrame) -> float:
    return _budget_point(getattr(run, "budget", None), "flops", curve["compute/flops"].max())


def _budget_point(budget, unit: str, otherwise: float) -> float:
    """The budget's amount where it is in `unit`, else `otherwise` (for seconds/steps budgets: what was actually spent)."""
    return float(budget["amount"]) if isinstance(budget, dict) and budget.get("unit") == unit else float(otherwise)


def memory_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean bytes per group over finished runs: peaks per phase, and each model's parameters, gradients, optimiser state."""
    keys = distinguishing_keys(runs)
    cols = sorted(c for c in runs.columns if c.startswith("memory/"))
    rows = [header | of_group[cols].astype(float).mean().to_dict() for header, of_group in groups(_finished(runs), keys)]
    table = pd.DataFrame(rows, columns=["task", "algo", *keys, *cols])
    per_model = [c for c in cols if c.endswith(("param_bytes", "grad_bytes", "optimizer_bytes"))]
    table["memory/models_total_bytes"] = table[per_model].fillna(0).sum(axis=1)
    return table


def pairwise_table(runs: pd.DataFrame, metric: str = "eval/gold_reward") -> pd.DataFrame:
    """Each pair of groups per task: difference in final `metric`, its 95 % CI, the test's p, Holm's adjustment of
    it over every test of the table (`p_holm`; `family`: how many), and a winner if p_holm < 0.05.

    Where both groups span ≥ 2 stage seeds and share ≥ 2 (a verdict needs 3), the test is paired over the shared
    stage seeds' means: per stage seed both groups start from the same SFT model and reward
    model, so the pairing removes that shared variance. Otherwise Welch's t compares each
    group's independent values (`units`). `n` is what the test used; `mdd` the smallest true difference that test
    detects with 80 % power at α = 0.05 (one comparison: stats.py `minimum_detectable_difference`), `mdd_holm` the
    same at α / family, the level Holm holds the smallest p-value to: a true difference of `mdd_holm` reaches the
    corrected verdict whatever the other tests find (Bonferroni's bound on Holm) with 80 % power by the closed
    form, which runs small at few stage seeds and small α (the exact one, statsmodels' TTestPower, is within 2 %
    of it at 16 stage seeds and α/10, 6 % at 5, 18 % at 3). Below 3
    values a side, or with no spread at all, there is no p and the winner column says why (stats.py `MIN_N`)."""
    keys = distinguishing_keys(runs)
    rows = []
    for task, of_task in _finished(runs).groupby("task", sort=True):
        for (ha, a), (hb, b) in itertools.combinations(groups(of_task, keys), 2):
            ma, mb = stage_means(a, metric), stage_means(b, metric)
            if len(ma) >= 2 and len(mb) >= 2 and len(ma.index.intersection(mb.index)) >= 2:
                name, test = PAIRED, paired(ma, mb)
            else:
                unit_a, unit_b = ("stage-seed means" if len(m) >= 2 else "runs" for m in (ma, mb))
                name = f"Welch t ({unit_a})" if unit_a == unit_b else f"Welch t ({unit_a} vs {unit_b})"
                test = welch(units(a, metric), units(b, metric))
            rows.append({"task": task, "a": label(ha), "b": label(hb), "metric": metric, "test": name, **test})
    columns = ["task", "a", "b", "metric", "test", "n", "diff", "ci95", "mdd", "mdd_holm", "p_value", "p_holm", "family", "winner"]
    table = pd.DataFrame(rows, columns=[*columns[:-5], "p_value", "se", "df", "reason"])
    table["p_holm"] = holm(table["p_value"])
    table["family"] = int(table["p_value"].notna().sum())
    table["mdd_holm"] = [minimum_detectable_difference(r.se, r.df, ALPHA / r.family) if r.family else math.nan for r in table.itertuples()]
    table["winner"] = [
        f"{r.reason} (n = {r.n})" if r.reason
        else (r.a if r.diff > 0 else r.b) if r.p_holm < ALPHA
        else f"no significant difference at n = {r.n}"
        for r in table.itertuples()
    ]  # fmt: skip
    return table[columns]


def sft_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Per task × stage seed: the SFT model every algorithm of that stage seed starts from. Its steps and held-out
    quality where it trained to `task.sft_target`, and its test scores (the runs' SFT baseline), with the spread
    (max - min) over the stage seeds of each task."""
    columns = ["task", "stage_seed", "sft steps", "target", "held-out quality", "test gold_reward", "test accuracy", "runs"]
    rows = []
    for (task, stage_seed), of_stage in _finished(runs).groupby(["task", "stage_seed"], sort=True):
        first = of_stage.iloc[0]
        rows.append({"task": task, "stage_seed": stage_seed, "sft steps": first.get("stages/sft/steps", math.nan),
                     "target": first.get("stages/sft/target", math.nan), "held-out quality": first.get("stages/sft/heldout_quality", math.nan),
                     "test gold_reward": first.get("sft/eval/gold_reward", math.nan), "test accuracy": first.get("sft/eval/accuracy", math.nan),
                     "runs": len(of_stage)})  # fmt: skip
    return pd.DataFrame(rows, columns=columns)


def sft_spread(sft: pd.DataFrame) -> list[str]:
    """Per task, the spread of its SFT models' test score over stage seeds (accuracy where there is one)."""
    lines = []
    for task, of_task in (sft.groupby("task", sort=True) if not sft.empty else []):
        metric = "test accuracy" if of_task["test accuracy"].notna().any() else "test gold_reward"
        values = of_task[metric].astype(float)
        if values.isna().all():  # runs from before the summaries recorded their SFT model's score
            continue
        lines.append(f"{task}: SFT {metric.removeprefix('test ')} {', '.join(f'{v:.3f}' for v in values)} on stage seeds "
                     f"{', '.join(map(str, of_task['stage_seed']))}: spread {values.max() - values.min():.3f}.")  # fmt: skip
    return lines


RANK_AXES = {"flops": "compute/flops", "seconds": "compute/seconds"}


def ranking_table(runs: pd.DataFrame, curves: pd.DataFrame, metric: str = "eval/gold_reward") -> pd.DataFrame:
    """Per task, the groups ranked by `metric` at equal FLOPs and at equal wall-clock seconds of training.

    Each run's value is read off its own curve (linear interpolation, never extrapolated) at
    one point per task and axis: the budget where the budget is in that unit, else the most
    every finished run of the task reached (the shortest run's end). Rank 1 is the highest
    mean; `agree` says whether the two orders of the task are the same."""
    keys = distinguishing_keys(runs)
    evals = curves.dropna(subset=[metric]) if metric in curves else curves.iloc[0:0]
    out = []
    for task, of_task in _finished(runs).groupby("task", sort=True):
        of_task_curves = evals[evals["run_dir"].isin(of_task["run_dir"])]
        at = {axis: _common_point(of_task, of_task_curves, unit, axis) for unit, axis in RANK_AXES.items()}
        rows = []
        for header, of_group in groups(of_task, keys):
            row = header | {"metric": metric, "covers": coverage(of_group["stage_seed"])[1]}
            for unit, axis in RANK_AXES.items():
                values = of_group.assign(**{metric: [
                    interpolate_at(of_task_curves[of_task_curves["run_dir"] == d], axis, metric, at[axis]) for d in of_group["run_dir"]
                ]})  # fmt: skip
                row[f"at {unit}"] = at[axis]
                row[f"{unit}: mean"], row[f"{unit}: ±"], row[f"{unit}: n"] = group_interval(values, metric)
            rows.append(row)
        for unit in RANK_AXES:
            order = pd.Series([r[f"{unit}: mean"] for r in rows]).rank(ascending=False, method="min")
            for r, rank in zip(rows, order):
                r[f"{unit}: rank"] = rank
        agree = all(r["flops: rank"] == r["seconds: rank"] for r in rows)
        out += [r | {"agree": agree} for r in rows]
    return pd.DataFrame(out, columns=_columns(out, keys))


def _common_point(runs: pd.DataFrame, curves: pd.DataFrame, unit: str, axis: str) -> float:
    budget = runs["budget"].iloc[0] if "budget" in runs else None
    return _budget_point(budget, unit, curves.groupby("run_dir")[axis].max().min())  # the shortest run's end
