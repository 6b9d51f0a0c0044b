"""`rlhf-bench-results`: runs -> tidy pandas frames -> tables and plots under `results/`.

    load_runs(paths)      one row per run × logged row (metrics.jsonl), run columns attached
    load_summaries(paths) one row per run (summary.json), plus what was skipped and why

A row of every table is one **group**: the runs whose result-changing config is the same
but for `seed` and `stage_seed` (the summary's `group`, see `bench.rundir`). Two groups
are never averaged together. Besides task and algo, a table shows as columns the settings
that tell its rows apart (`distinguishing_keys`: only the dotted keys that differ).

Tables: summary (final metrics: mean ± 95 % interval, n and what the interval covers),
compute-matched (gold reward at 25/50/75/100 % of the budget, interpolated in
compute/flops, never extrapolated), memory (mean bytes), and pairwise tests of each pair
of groups per task. Plots per task, one line per group: gold reward against FLOPs, the
reward-KL frontier, proxy against gold reward. Only runs whose status is `finished` enter
a mean; the others are counted and listed.

Intervals are 95 % Student-t at the level the runs are independent. The runs of one stage
seed share its SFT model, preference pairs, reward model and prompt splits, so for a group
spanning ≥ 2 stage seeds the runs of each stage seed are averaged first and the interval is
over those means (n = stage seeds, "stage × trainer seeds"); a group with one stage seed
gets the interval over its runs ("trainer seeds only"). The pairwise table uses a paired
t-test over the stage seeds two groups share (≥ 2, both groups spanning ≥ 2), and
otherwise Welch's t on each group's independent values (stage-seed means, or runs).
"""

from __future__ import annotations

import argparse
import glob
import itertools
import json
import logging
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy import stats  # noqa: E402

from bench import rundir  # noqa: E402

log = logging.getLogger("rlhf-bench-results")
RUN_KEYS = ["task", "algo", "model", "seed", "stage_seed", "group", "status", "run_dir"]
FINAL_METRICS = [
    "eval/gold_reward", "eval/proxy_reward", "eval/kl_to_ref", "eval/win_rate_vs_sft",
    "eval/length", "eval/accuracy", "compute/flops", "compute/seconds",
]  # fmt: skip
FRACTIONS = (0.25, 0.5, 0.75, 1.0)
ALPHA = 0.05
PAIRED = "paired t (shared stage seeds)"


@dataclass
class Runs:
    """What was read: one row per run, and the directories skipped with the reason."""

    summaries: pd.DataFrame
    skipped: list[tuple[str, str]] = field(default_factory=list)


def find_run_dirs(paths: list[str]) -> list[Path]:
    """Run directories under the given paths or globs: any directory holding config.json or summary.json."""
    found: set[Path] = set()
    for pattern in paths:
        for p in map(Path, glob.glob(pattern) or [pattern]):
            if not p.exists():
                log.warning("skipping %s: no such file or directory", p)
                continue
            candidates = [p] + [c.parent for name in (rundir.CONFIG, rundir.SUMMARY, rundir.METRICS) for c in p.rglob(name)]
            found |= {c for c in candidates if (c / rundir.CONFIG).exists() or (c / rundir.SUMMARY).exists()}
    return sorted(found)


def _flatten_summary(summary: dict) -> dict:
    row = {k: summary.get(k) for k in RUN_KEYS}
    row["wall_s"] = summary.get("wall_s")
    row["settings"] = summary.get("settings", {})
    for section in ("final", "memory"):
        row |= summary.get(section, {})
    row |= {f"sft/{k}": v for k, v in summary.get("sft", {}).items()}
    row["budget"] = summary.get("budget")
    row["git_commit"] = summary.get("git_commit")
    row["versions"] = summary.get("versions", {})
    if "diverged" in summary:
        row["diverged_at"] = f"{summary['diverged']['metric']} at step {summary['diverged']['step']}"
    return row


def load_summaries(paths: list[str]) -> Runs:
    """One row per run. Two directories holding the same identity (a copied directory, a sweep read
    twice) are one computation, not two seeds: the finished one, else the newest, is kept."""
    found, skipped = [], []
    for run_dir in find_run_dirs(paths):
        try:
            summary = rundir.read_summary(run_dir)
        except json.JSONDecodeError as e:
            skipped.append((str(run_dir), f"unreadable {rundir.SUMMARY} ({e})"))
            continue
        if summary is None:
            skipped.append((str(run_dir), f"no {rundir.SUMMARY} (still running, or killed before it finished)"))
            continue
        if summary.get("schema") != rundir.SUMMARY_SCHEMA:
            skipped.append((str(run_dir), f"summary schema {summary.get('schema')!r}, this tool reads {rundir.SUMMARY_SCHEMA}"))
            continue
        found.append((run_dir, summary))
    preference = lambda item: (item[1]["status"] == "finished", (item[0] / rundir.SUMMARY).stat().st_mtime)  # noqa: E731
    kept: dict[str, tuple[Path, dict]] = {}
    for run_dir, summary in sorted(found, key=preference, reverse=True):
        if summary.get("identity") in kept:
            skipped.append((str(run_dir), f"the same identity ({summary['identity']}) as {kept[summary['identity']][0]}"))
        else:
            kept[summary.get("identity")] = (run_dir, summary)
    rows = [_flatten_summary(summary) | {"run_dir": str(run_dir)} for run_dir, summary in sorted(kept.values())]
    for run_dir, reason in skipped:
        log.warning("skipping %s: %s", run_dir, reason)
    return Runs(pd.DataFrame(rows), skipped)


def load_runs(paths: list[str]) -> pd.DataFrame:
    """Tidy frame: one row per run × logged row, with the run's task, algo, model, seeds, group, settings and status."""
    runs = load_summaries(paths).summaries
    frames = []
    for run in runs.to_dict("records"):
        frame = pd.DataFrame(rundir.read_metrics(Path(run["run_dir"])))
        for key in RUN_KEYS:
            frame[key] = run[key]
        frame["settings"] = [run["settings"]] * len(frame)  # a dict per row: a scalar dict would be read as a mapping
        frames.append(frame)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=RUN_KEYS + ["settings"])


def load_wandb(project: str) -> tuple[Runs, pd.DataFrame]:
    """The same two frames from a wandb project (`entity/project`), through the public API.

    run.config is the run's resolved config, so its group and settings are computed here
    exactly as the runner computes them for summary.json."""
    import wandb

    summaries, curves = [], []
    for run in wandb.Api().runs(project):
        summary = {k: v for k, v in run.summary.items() if not k.startswith("_")}
        cfg = run.config
        meta = {
            "task": cfg.get("task", {}).get("name"), "algo": cfg.get("algo", {}).get("name"),
            "model": cfg.get("model", {}).get("name") or cfg.get("model", {}).get("preset"),
            "seed": cfg.get("seed"), "stage_seed": cfg.get("stage_seed"), "group": rundir.group(cfg),
            "status": summary.get("status", "failed"), "run_dir": run.path and "/".join(run.path),
        }  # fmt: skip
        settings = rundir.settings(cfg)
        summaries.append(meta | summary | {"settings": settings, "budget": cfg.get("budget")})
        history = pd.DataFrame(list(run.scan_history()))
        for key, value in meta.items():
            history[key] = value
        history["settings"] = [settings] * len(history)
        curves.append(history)
    empty = pd.DataFrame(columns=RUN_KEYS + ["settings"])
    return Runs(pd.DataFrame(summaries)), (pd.concat(curves, ignore_index=True) if curves else empty)


# ---------------------------------------------------------------------------- groups
_ABSENT = "<absent>"  # a key a run's settings lack; json.dumps never yields this bare string


def _value_of(settings: dict, key: str) -> str:
    return json.dumps(settings[key], sort_keys=True, default=str) if key in settings else _ABSENT


def distinguishing_keys(runs: pd.DataFrame) -> list[str]:
    """The settings keys shown as columns: those taking more than one value among the runs of some task × algorithm.

    A key that differs only between algorithms (PPO's β against DPO's) or only between tasks
    is already told apart by the algo and task columns. A key some runs of a pair lack (a hub
    model has no hidden_size) counts as one more value. Since a group is a hash of its
    settings, these keys tell apart every two groups of one task × algorithm."""
    keys: set[str] = set()
    for _, pair in runs.drop_duplicates("run_dir").groupby(["task", "algo"], dropna=False):
        settings = list(pair["settings"])
        for key in set().union(*settings) - keys:
            if len({_value_of(s, key) for s in settings}) > 1:
                keys.add(key)
    return sorted(keys)


def _sort_key(header: dict, key: str) -> tuple:
    """Numbers in numeric order (0.05 before 0.5 before 10), then other values as text, absent last."""
    value = header.get(key, _ABSENT)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, float(value))
    return (2, "") if value is _ABSENT else (1, str(value))


def groups(runs: pd.DataFrame, keys: list[str]) -> list[tuple[dict, pd.DataFrame]]:
    """Each group's header (task, algo, and its value of each distinguishing key it has) with its runs, in a stable order."""
    out = []
    for _, of_group in runs.groupby(["task", "algo", "group"], sort=False, dropna=False):
        first = of_group.iloc[0]
        settings = first["settings"]
        out.append(({"task": first["task"], "algo": first["algo"]} | {k: settings[k] for k in keys if k in settings}, of_group))
    return sorted(out, key=lambda g: (str(g[0]["task"]), str(g[0]["algo"]), *(_sort_key(g[0], k) for k in keys)))


def label(header: dict) -> str:
    """A group's name in the pairwise table and the plots: its algorithm, then its distinguishing settings."""
    return " ".join([str(header["algo"])] + [f"{k}={v}" for k, v in header.items() if k not in ("task", "algo")])


# ---------------------------------------------------------------------------- statistics
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


def welch(a: pd.Series, b: pd.Series) -> dict:
    """Welch's t-test of mean(a) - mean(b), with the difference's 95 % interval (Welch-Satterthwaite df)."""
    a, b = a.dropna().astype(float), b.dropna().astype(float)
    diff = a.mean() - b.mean()
    n = f"{len(a)}, {len(b)}"
    if len(a) < 2 or len(b) < 2:
        return {"n": n, "diff": diff, "ci95": math.nan, "p_value": math.nan}
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = math.sqrt(va + vb)
    if se == 0:
        return {"n": n, "diff": diff, "ci95": 0.0, "p_value": 0.0 if diff != 0 else 1.0}
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    p = stats.ttest_ind(a, b, equal_var=False).pvalue
    return {"n": n, "diff": diff, "ci95": stats.t.ppf(1 - ALPHA / 2, df) * se, "p_value": float(p)}


def paired(a: pd.Series, b: pd.Series) -> dict:
    """Paired t-test of a - b over their common index (stage seeds), with the mean difference's 95 % interval."""
    shared = a.index.intersection(b.index)
    d = a[shared] - b[shared]
    k = len(d)
    half = stats.t.ppf(1 - ALPHA / 2, k - 1) * d.std(ddof=1) / math.sqrt(k)
    if half == 0:  # every stage seed gives the same difference: ttest_rel would divide by zero
        p = 0.0 if d.mean() != 0 else 1.0
    else:
        p = float(stats.ttest_rel(a[shared], b[shared]).pvalue)
    return {"n": f"{k}", "diff": float(d.mean()), "ci95": float(half), "p_value": p}


def interpolate_at(curve: pd.DataFrame, x: str, y: str, at: float) -> float:
    """y at x = `at` by linear interpolation on the logged points; NaN outside them (never extrapolated)."""
    points = curve[[x, y]].dropna().sort_values(x)
    if points.empty or at < points[x].iloc[0] or at > points[x].iloc[-1]:
        return math.nan
    return float(np.interp(at, points[x].to_numpy(float), points[y].to_numpy(float)))


# ---------------------------------------------------------------------------- tables
def _finished(runs: pd.DataFrame) -> pd.DataFrame:
    return runs[runs["status"] == "finished"]


def summary_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Per group: mean and 95 % interval of each final metric over finished runs, n and what it covers; counts of the rest."""
    keys = distinguishing_keys(runs)
    peak_cols = [c for c in runs.columns if c.startswith("memory/peak_bytes/")]
    rows = []
    for header, of_group in groups(runs, keys):
        done = _finished(of_group)
        n, covered = coverage(done["stage_seed"])
        row = header | {
            "n": n, "covers": covered, "runs": len(done),
            "diverged": int((of_group["status"] == "diverged").sum()), "failed": int((of_group["status"] == "failed").sum()),
        }  # fmt: skip
        if peak_cols:
            done = done.assign(**{"memory/peak_bytes": done[peak_cols].max(axis=1)})
        for metric in [m for m in FINAL_METRICS + ["wall_s", "memory/peak_bytes"] if m in done.columns]:
            row[metric], row[f"{metric} ±"], _ = group_interval(done, metric)
        rows.append(row)
    return pd.DataFrame(rows, columns=_columns(rows, keys))


PAPER_COLUMNS = {  # metric -> (header, decimals)
    "eval/gold_reward": ("gold reward", 3), "eval/accuracy": ("accuracy", 3), "eval/proxy_reward": ("proxy reward", 2),
    "eval/kl_to_ref": ("KL to ref", 1), "eval/win_rate_vs_sft": ("win rate vs SFT", 2), "compute/seconds": ("train s", 0),
}  # fmt: skip


def _cell(mean: float, ci: float, decimals: int) -> str:
    if math.isnan(mean):
        return ""
    return f"{mean:.{decimals}f}" if math.isnan(ci) else f"{mean:.{decimals}f} ± {ci:.{decimals}f}"


def paper_table(summary: pd.DataFrame) -> pd.DataFrame:
    """The summary as a paper shows it: one `mean ± 95 % CI` cell per metric, n and what the interval covers."""
    head = [c for c in summary.columns if c not in ("n", "covers") and not c.startswith(("eval/", "compute/", "memory/", "wall_s"))]
    head = [c for c in head if c not in ("runs", "diverged", "failed")]
    table = summary[head + ["n", "covers"]].copy()
    for metric, (name, decimals) in PAPER_COLUMNS.items():
        if metric in summary and summary[metric].notna().any():
            table[name] = [_cell(m, c, decimals) for m, c in zip(summary[metric], summary[f"{metric} ±"])]
    return table


def _columns(rows: list[dict], keys: list[str]) -> list[str]:
    """task, algo, the distinguishing keys (NaN where a group lacks one), then the rest in first-seen order."""
    head = ["task", "algo", *keys]
    return head + [c for c in dict.fromkeys(c for row in rows for c in row) if c not in head]


def compute_matched_table(runs: pd.DataFrame, curves: pd.DataFrame) -> pd.DataFrame:
    """Per group and fraction of the budget: eval/gold_reward (and eval/accuracy) read off each run's curve, then its interval."""
    keys = distinguishing_keys(runs)
    evals = curves.dropna(subset=["eval/gold_reward"]) if "eval/gold_reward" in curves else curves.iloc[0:0]
    metrics = [m for m in ("eval/gold_reward", "eval/accuracy") if m in evals and evals[m].notna().any()]
    out = []
    for header, of_group in groups(_finished(runs), keys):
        per_run = []
        for run in of_group.itertuples(index=False):
            curve = evals[evals["run_dir"] == run.run_dir]
            budget = _budget_flops(run, curve)
            for frac in FRACTIONS:
                values = {m: interpolate_at(curve, "compute/flops", m, frac * budget) for m in metrics}
                per_run.append({"stage_seed": run.stage_seed, "fraction": frac} | values)
        for frac, at in pd.DataFrame(per_run).groupby("fraction", sort=True):
            # a run that stopped short of this fraction has no value and leaves the interval
            measured = at.dropna(subset=["eval/gold_reward"]) if "eval/gold_reward" in at else at.iloc[0:0]
            row = header | {"budget_fraction": frac, "covers": coverage(measured["stage_seed"])[1]}
            for metric in metrics:
                row[metric], row[f"{metric} ±"], row[f"{metric} n"] = group_interval(at, metric)
            out.append(row)
    return pd.DataFrame(out, columns=_columns(out, keys))


def _budget_flops(run, curve: pd.DataFrame) -> float:
    budget = getattr(run, "budget", None)
    if isinstance(budget, dict) and budget.get("unit") == "flops":
        return float(budget["amount"])
    return float(curve["compute/flops"].max())  # seconds/steps budgets: the FLOPs the run actually spent


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
    """Each pair of groups per task: difference in final `metric`, its 95 % CI, the test's p, and a winner if p < 0.05.

    Where both groups span ≥ 2 stage seeds and share ≥ 2, the test is paired over the shared
    stage seeds' means: per stage seed both groups start from the same SFT model and reward
    model, so the pairing removes that shared variance. Otherwise Welch's t compares each
    group's independent values (`units`). `n` is what the test used."""
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
            la, lb = label(ha), label(hb)
            significant = test["p_value"] < ALPHA
            verdict = (la if test["diff"] > 0 else lb) if significant else f"no significant difference at n = {test['n']}"
            rows.append({"task": task, "a": la, "b": lb, "metric": metric, "test": name, **test, "winner": verdict})
    return pd.DataFrame(rows, columns=["task", "a", "b", "metric", "test", "n", "diff", "ci95", "p_value", "winner"])


# ---------------------------------------------------------------------------- plots
COLORS = {"ppo": "tab:blue", "grpo": "tab:orange", "dpo": "tab:green"}
LINESTYLES = ("-", "--", ":", "-.")  # the groups of one algorithm share its colour and differ in line


def _mean_curve(curves: pd.DataFrame, x: str, y: str, grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and 95 % half-width (the rule of `units`) across one group's runs of y interpolated on a common x grid."""
    per_run = pd.DataFrame(
        [[c["stage_seed"].iloc[0]] + [interpolate_at(c, x, y, g) for g in grid] for _, c in curves.groupby("run_dir")],
        columns=["stage_seed", *range(len(grid))],
    )
    summary = [group_interval(per_run, i) for i in range(len(grid))]
    return np.array([m for m, _, _ in summary]), np.nan_to_num(np.array([h for _, h, _ in summary]))


def task_figure(task: str, curves: pd.DataFrame) -> plt.Figure:
    """One task's three panels, a line per group: gold reward vs FLOPs (mean, 95 % band), reward-KL frontier, proxy vs gold."""
    keys = distinguishing_keys(curves)
    evals = curves[(curves["task"] == task) & (curves["status"] == "finished")].dropna(subset=["eval/gold_reward"])
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    ax_curve, ax_frontier, ax_over = axes
    grid = np.linspace(0, evals.groupby("run_dir")["compute/flops"].max().min(), 50)  # where every run has a point
    seen: dict[str, int] = {}
    for header, of_group in groups(evals, keys):
        algo, name = header["algo"], label(header)
        style = {"color": COLORS.get(algo), "linestyle": LINESTYLES[seen.get(algo, 0) % len(LINESTYLES)]}
        seen[algo] = seen.get(algo, 0) + 1
        mean, ci = _mean_curve(of_group, "compute/flops", "eval/gold_reward", grid)
        ax_curve.plot(grid, mean, label=name, **style)
        ax_curve.fill_between(grid, mean - ci, mean + ci, alpha=0.2, color=ax_curve.lines[-1].get_color())
        by_point = of_group.assign(point=of_group.groupby("run_dir").cumcount()).groupby("point")
        kl, gold, proxy = (by_point[f"eval/{m}"].mean() for m in ("kl_to_ref", "gold_reward", "proxy_reward"))
        ax_frontier.plot(kl, gold, marker="o", label=name, **style)
        ax_over.plot(gold, proxy, marker="o", label=name, **style)
    ax_curve.set(xlabel="compute (FLOPs)", ylabel="gold reward", title=f"{task}: gold reward vs compute (95% CI)")
    ax_frontier.set(xlabel="KL to reference (nats, per sequence)", ylabel="gold reward", title=f"{task}: reward-KL frontier")
    ax_over.set(xlabel="gold reward", ylabel="proxy reward (reward model)", title=f"{task}: proxy vs gold")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    return fig


def plot_task(task: str, curves: pd.DataFrame, out: Path) -> list[Path]:
    fig, written = task_figure(task, curves), []
    for ext in ("png", "pdf"):
        path = out / f"{task}.{ext}"
        fig.savefig(path, dpi=150)
        written.append(path)
    plt.close(fig)
    return written


# ---------------------------------------------------------------------------- writing
def _write_table(df: pd.DataFrame, out: Path, name: str) -> None:
    df.to_csv(out / f"{name}.csv", index=False)
    (out / f"{name}.md").write_text(df.to_markdown(index=False, floatfmt=".4g") + "\n")
    (out / f"{name}.tex").write_text(df.to_latex(index=False, float_format="%.4g"))


def _count(n: int, what: str) -> str:
    return f"{n} {what}{'' if n == 1 else 's'}"


def describe_intervals(summary: pd.DataFrame, pairwise: pd.DataFrame) -> str:
    """The README's words on what the intervals cover and which pairwise tests ran, read off the two tables."""
    words = ["Only finished runs enter a mean; intervals are 95 % Student-t."]
    for what, n in sorted(summary.loc[summary["runs"] > 0, "covers"].value_counts().items()):
        if what.startswith("stage"):
            words.append(
                f"For {_count(n, 'group')} they cover {what}: the runs of one stage seed share its SFT model, "
                "preference pairs, reward model and prompt splits, so they are averaged first and the interval "
                "is over the stage-seed means (n = stage seeds)."
            )
        else:
            words.append(
                f"For {_count(n, 'group')} they cover {what}: the interval is over the runs (n = runs) "
                "and leaves out the variance of rebuilding the stages."
            )
    tests = pairwise["test"].value_counts()
    n_paired, n_welch = int(tests.get(PAIRED, 0)), int(tests.drop(PAIRED, errors="ignore").sum())
    if n_paired:
        words.append(
            f"Pairwise, {_count(n_paired, 'pair')}: a paired t-test over the stage seeds both groups share "
            "(the same SFT and reward model per stage seed), n = shared stage seeds."
        )
    if n_welch:
        words.append(
            f"Pairwise, {_count(n_welch, 'pair')}: Welch's t-test, over stage-seed means for a group spanning "
            "several stage seeds and over runs for a group with one (column `test`)."
        )
    return " ".join(words)


def provenance(runs: pd.DataFrame) -> str:
    """The commits the runs were taken at and the library versions they ran with."""
    commits = runs["git_commit"].fillna("unknown").value_counts() if "git_commit" in runs else pd.Series(dtype=int)
    versions = pd.DataFrame(list(runs["versions"])) if "versions" in runs else pd.DataFrame()
    libs = [f"{lib} {', '.join(sorted(versions[lib].dropna().astype(str).unique()))}" for lib in versions.columns]
    return (
        "Taken at commit " + ", ".join(f"`{c}` ({n} runs)" for c, n in commits.items())
        + (f"; with {'; '.join(libs)}." if libs else ".")
    )


def write_results(runs: Runs, curves: pd.DataFrame, out: Path, sources: list[str]) -> dict[str, pd.DataFrame]:
    out.mkdir(parents=True, exist_ok=True)
    table = runs.summaries
    tables = {
        "summary": summary_table(table),
        "compute_matched": compute_matched_table(table, curves),
        "memory": memory_table(table),
        "pairwise": pairwise_table(table),
    }
    tables["paper"] = paper_table(tables["summary"])
    for name, df in tables.items():
        _write_table(df, out, name)
    plots = [p for task in sorted(_finished(table)["task"].unique()) for p in plot_task(task, curves, out)]
    statuses = table["status"].value_counts().to_dict() if not table.empty else {}
    not_finished = table[table["status"] != "finished"]
    lines = [
        "# Results",
        "",
        f"Regenerate: `rlhf-bench-results {' '.join(sources)} --out {out}`",
        "",
        f"Runs read: {len(table)} ({', '.join(f'{v} {k}' for k, v in sorted(statuses.items()))}); skipped: {len(runs.skipped)}.",
        "Sweeps: " + ", ".join(f"`{d}` ({n} runs)" for d, n in sorted(table["run_dir"].map(lambda p: str(Path(p).parent)).value_counts().items())) + ".",
        provenance(table),
        "A row is a group: runs that differ only in `seed` and `stage_seed`.",
        describe_intervals(tables["summary"], tables["pairwise"]),
        "",
        "## Summary (final metrics at the budget, mean ± 95 % interval)",
        "",
        tables["paper"].to_markdown(index=False),
        "",
        "Every figure, unrounded, with the diverged and failed counts: `summary.csv`.",
        "",
        "## Gold reward at equal compute",
        "",
        tables["compute_matched"].to_markdown(index=False, floatfmt=".4g"),
        "",
        "## Pairwise (final gold reward)",
        "",
        tables["pairwise"].to_markdown(index=False, floatfmt=".4g"),
        "",
        "## Plots",
        "",
        *[f"![{p.stem}]({p.name})" for p in plots if p.suffix == ".png"],
    ]
    if len(not_finished):
        lines += ["", "## Runs left out of the means", ""]
        lines += [f"- `{r.run_dir}`: {r.status}" for r in not_finished.itertuples()]
    if runs.skipped:
        lines += ["", "## Directories skipped", ""] + [f"- `{d}`: {why}" for d, why in runs.skipped]
    (out / "README.md").write_text("\n".join(lines) + "\n")
    return tables


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rlhf-bench-results", description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", help="run directories, sweep directories or globs")
    parser.add_argument("--wandb", metavar="ENTITY/PROJECT", help="read the runs from a wandb project instead")
    parser.add_argument("--out", default="results", help="where the tables and plots go (default: results/)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    if bool(args.paths) == bool(args.wandb):
        parser.error("give run directories or --wandb ENTITY/PROJECT (one of the two)")
    if args.wandb:
        runs, curves = load_wandb(args.wandb)
    else:
        runs, curves = load_summaries(args.paths), load_runs(args.paths)
    if runs.summaries.empty:
        log.error("no runs found in %s", " ".join(args.paths) or args.wandb)
        return 1
    tables = write_results(runs, curves, Path(args.out), args.paths or [f"--wandb {args.wandb}"])
    print(tables["summary"].to_markdown(index=False, floatfmt=".4g"))
    log.info("wrote %s", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
