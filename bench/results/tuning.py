"""The equal-effort tuning protocol's results: the best configuration of each search, the tuned
table and the tuning compute.

A tune directory (written by `rlhf-bench-tune`, or by hand with the same layout) holds

    search/<algo>/   one Optuna sweep per algorithm (`rlhf-bench -m +tune=<algo>`): the trials
    final/<algo>/    the best trial's configuration on fresh trainer seeds and the stage seeds
    default/<algo>/  the default settings on the same seeds

A trial's configuration is its Hydra overrides (`.hydra/overrides.yaml` of its run directory);
the best trial is the finished one with the highest validation score at the budget (the
objective the app returned, `summary.objective`). Test scores (`eval/*`) of the search
trials are never read: what is reported comes from `final/` and `default/` only.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
from omegaconf import OmegaConf

from bench.results.load import load_summaries
from bench.results.stats import coverage, group_interval
from bench.results.tables import _cell, _finished

PARTS = ("search", "final", "default")
NOT_A_SETTING = ("seed", "stage_seed", "+tune", "hydra.")
"""Override keys that are not part of a configuration: the seeds (the finals set their own), the search."""


def is_tune_dir(path: str | Path) -> bool:
    return (Path(path) / "search").is_dir()


def is_search_dir(path: str | Path) -> bool:
    """An Optuna sweep (`rlhf-bench -m +tune=<algo>`): Hydra's Optuna sweeper leaves this file in it."""
    return (Path(path) / "optimization_results.yaml").exists()


def describe_best(search_dir: str | Path) -> str:
    """The best configuration of a search, as the overrides that run it on other seeds."""
    trials = load_trials(search_dir)
    best = best_trial(trials) if not trials.empty else None
    if best is None:
        return f"{search_dir}: no trial finished"
    return (
        f"{search_dir}: best of {len(trials)} trials, {best['objective']} {best['objective_value']:.4f} ({best['run_dir']}); "
        f"run it on fresh seeds with: rlhf-bench -m {' '.join(best['configuration'])} seed=1,2 stage_seed=0,1,2"
    )


def overrides(run_dir: str | Path) -> list[str]:
    """The Hydra overrides a run was launched with; [] for a run without them."""
    path = Path(run_dir) / ".hydra" / "overrides.yaml"
    return list(OmegaConf.load(path)) if path.exists() else []


def configuration(run_overrides: list[str]) -> list[str]:
    """The overrides that make a trial's configuration: its seeds and the search itself left out."""
    return [o for o in run_overrides if not o.split("=", 1)[0].startswith(NOT_A_SETTING)]


def objective_value(run: pd.Series) -> float:
    return float(run[run["objective"]]) if run["status"] == "finished" and run["objective"] in run else math.nan


def load_trials(search_dir: str | Path) -> pd.DataFrame:
    """One row per trial of a search: its summary columns, `objective_value` and `configuration` (a list of overrides)."""
    trials = load_summaries([str(search_dir)]).summaries
    if trials.empty:
        return trials
    trials["objective_value"] = [objective_value(t) for _, t in trials.iterrows()]
    trials["configuration"] = [configuration(overrides(d)) for d in trials["run_dir"]]
    return trials


def best_trial(trials: pd.DataFrame) -> pd.Series | None:
    """The finished trial with the highest validation score; None when no trial finished."""
    scored = trials.dropna(subset=["objective_value"])
    return None if scored.empty else scored.loc[scored["objective_value"].idxmax()]


def searched(trials: pd.DataFrame, best: pd.Series) -> dict[str, str]:
    """The best trial's values of the overrides that differ between the trials: the parameters the search chose."""
    values = [dict(o.split("=", 1) for o in c) for c in trials["configuration"]]
    varying = {k for v in values for k in v if len({w.get(k) for w in values}) > 1}
    return {k: v for k, v in (o.split("=", 1) for o in best["configuration"]) if k in varying}


def _test_metric(objective: str) -> str:
    return objective.replace("val/", "eval/", 1)


def _format_params(params: dict[str, str]) -> str:
    def short(v: str) -> str:
        try:
            return f"{float(v):.3g}"
        except ValueError:
            return v

    return ", ".join(f"{k.removeprefix('algo.')}={short(v)}" for k, v in sorted(params.items()))


def tuned_table(tune_dir: str | Path) -> pd.DataFrame:
    """Per task × algorithm, a `tuned` and a `default` row: trials, the best parameters and their validation score,
    and the test score (mean ± 95 % interval over the final runs, n and what it covers)."""
    tune_dir = Path(tune_dir)
    rows = []
    for search_dir in sorted(p for p in (tune_dir / "search").glob("*") if p.is_dir()):
        trials = load_trials(search_dir)
        if trials.empty:
            continue
        for (task, algo), of_algo in trials.groupby(["task", "algo"]):
            best = best_trial(of_algo)
            metric = _test_metric(of_algo["objective"].iloc[0])
            base = {"task": task, "algo": algo, "objective": of_algo["objective"].iloc[0]}
            for setting in ("tuned", "default"):
                runs = load_summaries([str(tune_dir / ("final" if setting == "tuned" else setting) / algo)]).summaries
                runs = _finished(runs) if not runs.empty else runs
                mean, ci, _ = group_interval(runs, metric) if not runs.empty else (math.nan, math.nan, 0)
                n, covers = coverage(runs["stage_seed"]) if not runs.empty else (0, "")
                row = base | {"setting": setting}
                if setting == "tuned":
                    row |= {
                        "trials": len(of_algo), "trials_finished": int((of_algo["status"] == "finished").sum()),
                        "best": _format_params(searched(of_algo, best)) if best is not None else "(no trial finished)",
                        "val": best["objective_value"] if best is not None else math.nan,
                    }  # fmt: skip
                else:
                    row |= {"trials": 0, "trials_finished": 0, "best": "(defaults)", "val": math.nan}
                rows.append(row | {"test": mean, "test ±": ci, "test metric": metric, "n": n, "covers": covers})
    return pd.DataFrame(rows)


def paper_tuned(table: pd.DataFrame) -> pd.DataFrame:
    """The tuned table as the README shows it: one `mean ± CI` test cell."""
    shown = table[["task", "algo", "setting", "trials", "best", "val", "test metric", "n", "covers"]].copy()
    shown["val"] = [f"{v:.3f}" if not math.isnan(v) else "" for v in table["val"]]
    shown.insert(7, "test", [_cell(m, c, 3) for m, c in zip(table["test"], table["test ±"])])
    return shown


def tuning_compute_table(tune_dir: str | Path) -> pd.DataFrame:
    """Per task × algorithm: the trials of its search and what they spent, in FLOPs (the budget's meter,
    overshoot of the last step included) and wall seconds. Equal FLOPs by construction: every trial runs
    at the same budget."""
    rows = []
    for search_dir in sorted(p for p in (Path(tune_dir) / "search").glob("*") if p.is_dir()):
        trials = load_trials(search_dir)
        for (task, algo), of_algo in trials.groupby(["task", "algo"]) if not trials.empty else []:
            rows.append({
                "task": task, "algo": algo, "trials": len(of_algo),
                "budget per trial": of_algo["budget"].iloc[0]["amount"], "unit": of_algo["budget"].iloc[0]["unit"],
                "flops spent": of_algo["compute/flops_spent"].sum(), "wall s": of_algo["wall_s"].sum(),
            })  # fmt: skip
    return pd.DataFrame(rows)
