"""Statistics: 95 % intervals at the level runs are independent, paired and Welch tests, their minimum
detectable differences, Holm's correction over a table's tests, interpolation.

The runs of one stage seed share its SFT model, preference pairs, reward model and prompt
splits: for a group spanning ≥ 2 stage seeds the runs of each are averaged first and the
interval is over the stage-seed means (n = stage seeds); a group with one stage seed gets
the interval over its runs (trainer seeds only).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

ALPHA = 0.05
POWER = 0.8
"""The power at which `minimum_detectable_difference` is stated (a two-sided test at `ALPHA`)."""

PAIRED = "paired t (shared stage seeds)"


def mean_ci(values: pd.Series) -> tuple[float, float, int]:
    """Mean, half-width of the 95 % Student-t interval, and n (NaN half-width for n < 2)."""
    v = values.dropna().astype(float)
    n = len(v)
    if n == 0:
        return math.nan, math.nan, 0
    if n == 1:
        return float(v.iloc[0]), math.nan, 1
    return float(v.mean()), float(stats.t.ppf(1 - ALPHA / 2, n - 1) * v.std(ddof=1) / math.sqrt(n)), n


def stage_means(runs: pd.DataFrame, metric: str) -> pd.Series:
    """`metric` averaged over the runs of each stage seed (indexed by stage seed), runs without a value left out."""
    measured = pd.DataFrame({"stage_seed": runs["stage_seed"], "value": runs[metric].astype(float)}).dropna(subset=["value"])
    return measured.groupby("stage_seed")["value"].mean()


def units(runs: pd.DataFrame, metric: str) -> pd.Series:
    """One group's independent values of `metric`: its stage-seed means where it spans ≥ 2 stage seeds, else its runs'.

    Runs of one stage seed share the SFT model, preference pairs, reward model and prompt
    splits built from it; counting them as independent would understate the variance."""
    means = stage_means(runs, metric)
    return means if len(means) >= 2 else runs[metric].astype(float).dropna()


def group_interval(runs: pd.DataFrame, metric: str) -> tuple[float, float, int]:
    """Mean, 95 % half-width and n of `metric` over one group's runs (the rule of `units`)."""
    return mean_ci(units(runs, metric))


def coverage(stage_seeds: pd.Series) -> tuple[int, str]:
    """n and what a group's interval covers, given the stage seeds of the runs that enter it (the rule of `units`).

    3 stage seeds of 2 runs each: (3, "stage × trainer seeds (3 × 2)"); one: (runs, "trainer seeds only (1 stage seed)")."""
    per_stage = stage_seeds.value_counts()
    if len(per_stage) >= 2:
        low, high = per_stage.min(), per_stage.max()
        return len(per_stage), f"stage × trainer seeds ({len(per_stage)} × {low if low == high else f'{low}–{high}'})"
    return len(stage_seeds), ("trainer seeds only (1 stage seed)" if len(stage_seeds) else "")


MIN_N = 3
"""The fewest independent values per side for which a test gives a verdict: with 2, one pair of equal
differences has zero variance and the paired t would declare a winner on no evidence of spread."""


def no_spread(values: pd.Series) -> bool:
    """All values equal up to rounding: 0.3 - 0.2 and 0.1 differ in the 17th digit, and that must not count as spread."""
    return bool(values.std(ddof=1) <= 1e-9 * max(1.0, float(values.abs().max())))


def minimum_detectable_difference(se: float, df: float, alpha: float = ALPHA, power: float = POWER) -> float:
    """The smallest true difference a two-sided t-test of standard error `se` and `df` degrees of freedom
    detects with probability `power` at level `alpha`: (t_{1-α/2, df} + t_{power, df}) · se.

    The usual closed form (it treats the noncentral t as a shifted central one): against statsmodels' exact
    `TTestPower` for a paired test it is 5 % small at n = 3 pairs, 1 % at 5 and under 0.5 % from 8 on."""
    return float((stats.t.ppf(1 - alpha / 2, df) + stats.t.ppf(power, df)) * se)


def seeds_for(sd: float, difference: float, alpha: float = ALPHA, power: float = POWER) -> int:
    """The fewest pairs n at which a paired test over differences of standard deviation `sd` detects
    `difference` (`minimum_detectable_difference` with se = sd / √n, df = n - 1); at least `MIN_N`."""
    n = MIN_N
    while minimum_detectable_difference(sd / math.sqrt(n), n - 1, alpha, power) > difference:
        n += 1
    return n


def variance_components(values: pd.DataFrame) -> tuple[float, float]:
    """Between-stage and within-stage variance of one quantity (`value`, e.g. a paired difference) measured
    on several trainer seeds of several stage seeds (columns `stage_seed`, `value`): the one-way random-effects
    ANOVA's method of moments. Within: the variance of the values of one stage seed, pooled over the stage seeds
    that have ≥ 2. Between: the variance of the stage-seed means less the part their trainer seeds put in it,
    within · mean(1/k_s) (k_s values on stage seed s), floored at 0. NaN within where no stage seed has 2 values
    (the two parts are then one: `design_sd` at the pilot's own 1 trainer seed only)."""
    by_stage = values.dropna(subset=["value"]).groupby("stage_seed")["value"]
    means, sizes = by_stage.mean(), by_stage.size()
    if len(means) < 2:
        return math.nan, math.nan
    df_within = (sizes[sizes >= 2] - 1).sum()
    if df_within == 0:
        return float(means.var(ddof=1)), math.nan
    within = float((by_stage.var(ddof=1)[sizes >= 2] * (sizes[sizes >= 2] - 1)).sum() / df_within)
    return max(0.0, float(means.var(ddof=1)) - within * float((1 / sizes).mean())), within


def design_sd(between: float, within: float, trainer_seeds: int) -> float:
    """The standard deviation of a stage seed's mean over `trainer_seeds` runs: √(between + within/k). Without a
    within part (a pilot of 1 trainer seed, whose between is the whole) only k = 1 is known."""
    if math.isnan(within):
        return math.sqrt(between) if trainer_seeds == 1 else math.nan
    return math.sqrt(between + within / trainer_seeds)


def no_verdict(n: str, diff: float, why: str) -> dict:
    """A test that was not run: no interval, no p, and the reason in the table (`reason`)."""
    return {"n": n, "diff": diff, "ci95": math.nan, "p_value": math.nan, "mdd": math.nan, "se": math.nan, "df": math.nan, "reason": why}


def holm(p_values: pd.Series) -> pd.Series:
    """Holm's step-down adjustment of the p-values of one family of tests (statsmodels' `multipletests`,
    method "holm"): the k-th smallest of m is multiplied by m - k + 1, kept monotone and capped at 1. A test
    that did not run (NaN) is not in the family and stays NaN."""
    from statsmodels.stats.multitest import multipletests

    ran = p_values.dropna()
    adjusted = pd.Series(math.nan, index=p_values.index, dtype=float)
    if len(ran):
        adjusted[ran.index] = multipletests(ran.to_numpy(float), alpha=ALPHA, method="holm")[1]
    return adjusted


def welch(a: pd.Series, b: pd.Series) -> dict:
    """Welch's t-test of mean(a) - mean(b), with the difference's 95 % interval (scipy's, Welch-Satterthwaite df).
    No verdict below `MIN_N` values a side or with no spread at all (scipy's t is undefined there)."""
    a, b = a.dropna().astype(float), b.dropna().astype(float)
    diff = float(a.mean() - b.mean())
    n = f"{len(a)}, {len(b)}"
    if min(len(a), len(b)) < MIN_N:
        return no_verdict(n, diff, f"no verdict: n < {MIN_N}")
    if no_spread(a) and no_spread(b):
        return no_verdict(n, diff, "no verdict: zero variance")
    test = stats.ttest_ind(a, b, equal_var=False)
    half = float(test.confidence_interval(1 - ALPHA).high - diff)
    se = half / stats.t.ppf(1 - ALPHA / 2, test.df)
    return {"n": n, "diff": diff, "ci95": half, "p_value": float(test.pvalue), "mdd": minimum_detectable_difference(se, test.df),
            "se": se, "df": float(test.df), "reason": ""}  # fmt: skip


def paired(a: pd.Series, b: pd.Series) -> dict:
    """Paired t-test of a - b over their common index (stage seeds), with the mean difference's 95 % interval.
    No verdict below `MIN_N` shared stage seeds, or when every difference is the same (zero variance:
    the t statistic is infinite however few the pairs)."""
    shared = a.index.intersection(b.index)
    d = a[shared] - b[shared]
    k = len(d)
    if k < MIN_N:
        return no_verdict(f"{k}", float(d.mean()), f"no verdict: n < {MIN_N}")
    if no_spread(d):
        return no_verdict(f"{k}", float(d.mean()), "no verdict: zero variance")
    se = d.std(ddof=1) / math.sqrt(k)
    return {"n": f"{k}", "diff": float(d.mean()), "ci95": float(stats.t.ppf(1 - ALPHA / 2, k - 1) * se),
            "p_value": float(stats.ttest_rel(a[shared], b[shared]).pvalue), "mdd": minimum_detectable_difference(se, k - 1),
            "se": se, "df": float(k - 1), "reason": ""}  # fmt: skip


def interpolate_at(curve: pd.DataFrame, x: str, y: str, at: float) -> float:
    """y at x = `at` by linear interpolation on the logged points; NaN outside them (never extrapolated)."""
    points = curve[[x, y]].dropna().sort_values(x)
    if points.empty or at < points[x].iloc[0] or at > points[x].iloc[-1]:
        return math.nan
    return float(np.interp(at, points[x].to_numpy(float), points[y].to_numpy(float)))
