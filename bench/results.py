"""`rlhf-bench-results`: runs -> tidy pandas frames -> tables and plots under `results/`.

    load_runs(paths)      one row per run × logged row (metrics.jsonl), run columns attached
    load_summaries(paths) one row per run (summary.json), plus what was skipped and why

Tables: summary (mean ± 95 % Student-t CI over seeds), compute-matched (gold reward at
25/50/75/100 % of the budget, interpolated in compute/flops, never extrapolated),
memory, and pairwise Welch t-tests. Plots per task: gold reward against FLOPs, the
reward-KL frontier, proxy against gold reward. Only runs whose status is `finished`
enter a mean; the others are counted and listed.
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

from bench.runner import SUMMARY_SCHEMA  # noqa: E402

log = logging.getLogger("rlhf-bench-results")
RUN_KEYS = ["task", "algo", "model", "seed", "stage_seed", "status", "run_dir"]
FINAL_METRICS = [
    "eval/gold_reward", "eval/proxy_reward", "eval/kl_to_ref", "eval/win_rate_vs_sft",
    "eval/length", "eval/accuracy", "compute/flops", "compute/seconds",
]  # fmt: skip
FRACTIONS = (0.25, 0.5, 0.75, 1.0)
ALPHA = 0.05


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
            candidates = [p] + [c.parent for name in ("config.json", "summary.json", "metrics.jsonl") for c in p.rglob(name)]
            found |= {c for c in candidates if (c / "config.json").exists() or (c / "summary.json").exists()}
    return sorted(found)


def _flatten_summary(summary: dict) -> dict:
    row = {k: summary.get(k) for k in RUN_KEYS}
    row["wall_s"] = summary.get("wall_s")
    for section in ("final", "memory"):
        row |= summary.get(section, {})
    row |= {f"sft/{k}": v for k, v in summary.get("sft", {}).items()}
    row["budget"] = summary.get("budget")
    if "diverged" in summary:
        row["diverged_at"] = f"{summary['diverged']['metric']} at step {summary['diverged']['step']}"
    return row


def load_summaries(paths: list[str]) -> Runs:
    rows, skipped = [], []
    for run_dir in find_run_dirs(paths):
        path = run_dir / "summary.json"
        if not path.exists():
            skipped.append((str(run_dir), "no summary.json (still running, or killed before it finished)"))
            continue
        try:
            summary = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            skipped.append((str(run_dir), f"unreadable summary.json ({e})"))
            continue
        if summary.get("schema") != SUMMARY_SCHEMA:
            skipped.append((str(run_dir), f"summary schema {summary.get('schema')!r}, this tool reads {SUMMARY_SCHEMA}"))
            continue
        rows.append(_flatten_summary(summary) | {"run_dir": str(run_dir)})
    for run_dir, reason in skipped:
        log.warning("skipping %s: %s", run_dir, reason)
    return Runs(pd.DataFrame(rows), skipped)


def load_runs(paths: list[str]) -> pd.DataFrame:
    """Tidy frame: one row per run × logged row, with the run's task, algo, model, seed and status."""
    runs = load_summaries(paths).summaries
    frames = []
    for run in runs.itertuples(index=False):
        rows = [json.loads(line) for line in (Path(run.run_dir) / "metrics.jsonl").read_text().splitlines() if line.strip()]
        frame = pd.DataFrame(rows)
        for key in RUN_KEYS:
            frame[key] = getattr(run, key)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=RUN_KEYS)


def load_wandb(project: str) -> tuple[Runs, pd.DataFrame]:
    """The same two frames from a wandb project (`entity/project`), through the public API."""
    import wandb

    summaries, curves = [], []
    for run in wandb.Api().runs(project):
        summary = {k: v for k, v in run.summary.items() if not k.startswith("_")}
        cfg = run.config
        meta = {
            "task": cfg.get("task", {}).get("name"), "algo": cfg.get("algo", {}).get("name"),
            "model": cfg.get("model", {}).get("name") or cfg.get("model", {}).get("preset"),
            "seed": cfg.get("seed"), "stage_seed": cfg.get("stage_seed"),
            "status": summary.get("status", "failed"), "run_dir": run.path and "/".join(run.path),
        }  # fmt: skip
        summaries.append(meta | summary | {"budget": cfg.get("budget")})
        history = pd.DataFrame(list(run.scan_history()))
        for key, value in meta.items():
            history[key] = value
        curves.append(history)
    return Runs(pd.DataFrame(summaries)), (pd.concat(curves, ignore_index=True) if curves else pd.DataFrame(columns=RUN_KEYS))


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


def welch(a: pd.Series, b: pd.Series) -> dict:
    """Welch's t-test of mean(a) - mean(b), with the difference's 95 % interval (Welch-Satterthwaite df)."""
    a, b = a.dropna().astype(float), b.dropna().astype(float)
    diff = a.mean() - b.mean()
    if len(a) < 2 or len(b) < 2:
        return {"diff": diff, "ci95": math.nan, "p_value": math.nan, "n_a": len(a), "n_b": len(b)}
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = math.sqrt(va + vb)
    if se == 0:
        return {"diff": diff, "ci95": 0.0, "p_value": 0.0 if diff != 0 else 1.0, "n_a": len(a), "n_b": len(b)}
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    p = stats.ttest_ind(a, b, equal_var=False).pvalue
    return {"diff": diff, "ci95": stats.t.ppf(1 - ALPHA / 2, df) * se, "p_value": float(p), "n_a": len(a), "n_b": len(b)}


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
    """Per task × algorithm: mean, 95 % CI and n of each final metric over finished runs; counts of the rest."""
    rows = []
    peak_cols = [c for c in runs.columns if c.startswith("memory/peak_bytes/")]
    for (task, algo), group in runs.groupby(["task", "algo"], sort=True):
        done = _finished(group)
        row = {"task": task, "algo": algo, "n": len(done), "diverged": int((group["status"] == "diverged").sum()),
               "failed": int((group["status"] == "failed").sum())}  # fmt: skip
        if peak_cols:
            done = done.assign(**{"memory/peak_bytes": done[peak_cols].max(axis=1)})
        for metric in [m for m in FINAL_METRICS + ["wall_s", "memory/peak_bytes"] if m in done.columns]:
            mean, ci, _ = mean_ci(done[metric])
            row[metric], row[f"{metric} ±"] = mean, ci
        rows.append(row)
    return pd.DataFrame(rows)


def compute_matched_table(runs: pd.DataFrame, curves: pd.DataFrame) -> pd.DataFrame:
    """eval/gold_reward (and eval/accuracy) at each fraction of the budget, read off each run's curve."""
    rows = []
    evals = curves.dropna(subset=["eval/gold_reward"]) if "eval/gold_reward" in curves else curves.iloc[0:0]
    for run in _finished(runs).itertuples(index=False):
        curve = evals[evals["run_dir"] == run.run_dir]
        budget = _budget_flops(run, curve)
        for frac in FRACTIONS:
            row = {"task": run.task, "algo": run.algo, "seed": run.seed, "fraction": frac}
            for metric in ("eval/gold_reward", "eval/accuracy"):
                if metric in curve and curve[metric].notna().any():
                    row[metric] = interpolate_at(curve, "compute/flops", metric, frac * budget)
            rows.append(row)
    per_run = pd.DataFrame(rows)
    if per_run.empty:
        return per_run
    out = []
    for (task, algo, frac), group in per_run.groupby(["task", "algo", "fraction"], sort=True):
        row = {"task": task, "algo": algo, "budget_fraction": frac}
        for metric in ("eval/gold_reward", "eval/accuracy"):
            if metric in group:
                row[metric], row[f"{metric} ±"], row[f"{metric} n"] = mean_ci(group[metric])
        out.append(row)
    return pd.DataFrame(out)


def _budget_flops(run, curve: pd.DataFrame) -> float:
    budget = getattr(run, "budget", None)
    if isinstance(budget, dict) and budget.get("unit") == "flops":
        return float(budget["amount"])
    return float(curve["compute/flops"].max())  # seconds/steps budgets: the FLOPs the run actually spent


def memory_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean bytes per algorithm (and task): peaks per phase, and each model's parameters, gradients, optimiser state."""
    cols = sorted(c for c in runs.columns if c.startswith("memory/"))
    done = _finished(runs)
    table = done.groupby(["task", "algo"])[cols].mean().reset_index()
    per_model = [c for c in cols if c.endswith(("param_bytes", "grad_bytes", "optimizer_bytes"))]
    table["memory/models_total_bytes"] = table[per_model].fillna(0).sum(axis=1)
    return table


def pairwise_table(runs: pd.DataFrame, metric: str = "eval/gold_reward") -> pd.DataFrame:
    """Each pair of algorithms per task: difference in final `metric`, its 95 % CI, Welch's p, and a winner if p < 0.05."""
    rows = []
    done = _finished(runs)
    for task, group in done.groupby("task", sort=True):
        for a, b in itertools.combinations(sorted(group["algo"].unique()), 2):
            test = welch(group.loc[group["algo"] == a, metric], group.loc[group["algo"] == b, metric])
            significant = test["p_value"] < ALPHA
            verdict = (a if test["diff"] > 0 else b) if significant else f"no significant difference at n = {test['n_a']}, {test['n_b']}"
            rows.append({"task": task, "a": a, "b": b, "metric": metric, **test, "winner": verdict})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------- plots
COLORS = {"ppo": "tab:blue", "grpo": "tab:orange", "dpo": "tab:green"}


def _mean_curve(curves: pd.DataFrame, x: str, y: str, grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and 95 % CI half-width across runs of y interpolated on a common x grid (inside each run's range)."""
    per_run = [
        [interpolate_at(c, x, y, g) for g in grid] for _, c in curves.groupby("run_dir")
    ]
    values = pd.DataFrame(per_run, columns=range(len(grid)))
    summary = [mean_ci(values[i]) for i in values.columns]
    return np.array([m for m, _, _ in summary]), np.nan_to_num(np.array([h for _, h, _ in summary]))


def task_figure(task: str, curves: pd.DataFrame) -> plt.Figure:
    """Three panels for one task: gold reward vs FLOPs (mean, 95 % CI band), reward-KL frontier, proxy vs gold."""
    evals = curves[(curves["task"] == task) & (curves["status"] == "finished")].dropna(subset=["eval/gold_reward"])
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    ax_curve, ax_frontier, ax_over = axes
    grid = np.linspace(0, evals["compute/flops"].max(), 50)
    for algo, group in sorted(evals.groupby("algo")):
        color = COLORS.get(algo)
        mean, ci = _mean_curve(group, "compute/flops", "eval/gold_reward", grid)
        ax_curve.plot(grid, mean, label=algo, color=color)
        ax_curve.fill_between(grid, mean - ci, mean + ci, alpha=0.2, color=color)
        by_point = group.assign(point=group.groupby("run_dir").cumcount()).groupby("point")
        kl, gold, proxy = by_point["eval/kl_to_ref"].mean(), by_point["eval/gold_reward"].mean(), by_point["eval/proxy_reward"].mean()
        ax_frontier.plot(kl, gold, marker="o", label=algo, color=color)
        ax_over.plot(gold, proxy, marker="o", label=algo, color=color)
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


def write_results(runs: Runs, curves: pd.DataFrame, out: Path, sources: list[str]) -> dict[str, pd.DataFrame]:
    out.mkdir(parents=True, exist_ok=True)
    table = runs.summaries
    tables = {
        "summary": summary_table(table),
        "compute_matched": compute_matched_table(table, curves),
        "memory": memory_table(table),
        "pairwise": pairwise_table(table),
    }
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
        "Only finished runs enter a mean; intervals are 95 % Student-t over seeds; pairwise tests are Welch's t.",
        "",
        "## Summary (final metrics)",
        "",
        tables["summary"].to_markdown(index=False, floatfmt=".4g"),
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
