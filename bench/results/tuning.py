"""The equal-effort tuning protocol's results: the best configuration of each search, the tuned
table and the tuning compute.

A tune directory's layout is bench/tunedir.py's (written by `rlhf-bench-tune`, or by hand with the same
layout). A trial's configuration is its Hydra overrides (`.hydra/overrides.yaml` of its run directory);
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
from bench.tunedir import DEFAULT, FINAL, TuneConfig, configuration, overrides, searches, trial_number


def describe_best(search_dir: str | Path) -> str:
    """The best configuration of a search, as the overrides that run it on other seeds."""
    trials = load_trials(search_dir)
    best = best_trial(trials) if not trials.empty else None
    if best is None:
        return f"{search_dir}: no trial finished"
    fresh = TuneConfig()  # rlhf-bench-tune's final seeds
    return (
        f"{search_dir}: best of {len(trials)} trials, {best['objective']} {best['objective_value']:.4f} ({best['run_dir']}); "
        f"run it on fresh seeds with: rlhf-bench -m {' '.join(best['configuration'])} seed={fresh.final_seeds} "
        f"stage_seed={','.join(map(str, fresh.stage_seeds))}"
    )


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


def searched(trials: pd.DataFrame, best: pd.Series, search_dir: str | Path) -> dict[str, str]:
    """The best trial's values of the searched parameters: the search space's names as the Optuna sweeper
    recorded them (`optimization_results.yaml`), else the overrides that differ between the trials."""
    results = Path(search_dir) / "optimization_results.yaml"
    if results.exists():
        names = set(OmegaConf.load(results).get("best_params", {}))
    else:
        values = [dict(o.split("=", 1) for o in c) for c in trials["configuration"]]
        names = {k for v in values for k in v if len({w.get(k) for w in values}) > 1}
    return {k: v for k, v in (o.split("=", 1) for o in best["configuration"]) if k in names}


def one_protocol(runs: pd.DataFrame, where: Path) -> None:
    """Refuse a directory that mixes protocols (another budget, task or configuration run into the same place):
    a best trial or an interval taken across them would compare different computations."""
    for key in ("task", "budget"):
        if runs[key].map(str).nunique() > 1:
            raise ValueError(f"{where} holds runs of several {key}s ({', '.join(sorted(runs[key].map(str).unique()))}): one protocol per tune directory")


def _test_metric(objective: str) -> str:
    return objective.replace("val/", "eval/", 1)


def _format_params(params: dict[str, str]) -> str:
    def short(v: str) -> str:
        try:
            return f"{float(v):.3g}"
        except ValueError:
            return v

    return ", ".join(f"{k.removeprefix('algo.')}={short(v)}" for k, v in sorted(params.items()))


def finals_of(best: pd.Series | None, where: Path) -> pd.DataFrame:
    """The runs in a final directory of the best configuration only: it may also hold an earlier protocol's pick
    (a search extended by more trials found another best, and its finals ran beside the first's)."""
    runs = load_summaries([str(where)]).summaries if where.exists() else pd.DataFrame()
    return runs[runs["group"] == best["group"]] if best is not None and not runs.empty else runs.iloc[0:0]


def best_finals(tune_dir: str | Path) -> pd.DataFrame:
    """The final runs of every search's best configuration in a tune directory."""
    frames = []
    for search_dir in searches(tune_dir):
        trials = load_trials(search_dir)
        if not trials.empty:
            frames.append(finals_of(best_trial(trials), Path(tune_dir) / FINAL / search_dir.name))
    frames = [f for f in frames if not f.empty]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def tuned_table(tune_dir: str | Path) -> pd.DataFrame:
    """Per task × algorithm, a `tuned` and a `default` row: trials, the best parameters and their validation score,
    and the test score (mean ± 95 % interval over the finished final runs, n and what it covers; `runs` counts
    them all, diverged and failed included)."""
    tune_dir = Path(tune_dir)
    rows = []
    for search_dir in searches(tune_dir):
        trials = load_trials(search_dir)
        if trials.empty:
            continue
        one_protocol(trials, search_dir)
        best = best_trial(trials)
        task, algo, objective = trials["task"].iloc[0], trials["algo"].iloc[0], trials["objective"].iloc[0]
        metric = _test_metric(objective)
        for setting in ("tuned", "default"):
            where = tune_dir / (FINAL if setting == "tuned" else DEFAULT) / search_dir.name
            if setting == "tuned":
                runs = finals_of(best, where)
                head = {
                    "trials": len(trials), "trials_finished": int((trials["status"] == "finished").sum()),
                    "best": _format_params(searched(trials, best, search_dir)) if best is not None else "(no trial finished)",
                    "val": best["objective_value"] if best is not None else math.nan,
                }  # fmt: skip
            else:
                runs = load_summaries([str(where)]).summaries if where.exists() else pd.DataFrame()
                if not runs.empty and runs["group"].nunique() > 1:
                    raise ValueError(f"{where} holds runs of several configurations: one protocol per tune directory")
                head = {"trials": 0, "trials_finished": 0, "best": "(defaults)", "val": math.nan}
            done = _finished(runs) if not runs.empty else runs
            mean, ci, _ = group_interval(done, metric) if not done.empty else (math.nan, math.nan, 0)
            n, covers = coverage(done["stage_seed"]) if not done.empty else (0, "")
            rows.append({"task": task, "algo": algo, "objective": objective, "setting": setting} | head | {
                "test": mean, "test ±": ci, "test metric": metric, "n": n, "covers": covers, "runs": len(runs),
                "not finished": len(runs) - len(done),
            })  # fmt: skip
    return pd.DataFrame(rows)


def paper_tuned(table: pd.DataFrame) -> pd.DataFrame:
    """The tuned table as the README shows it: one `mean ± CI` test cell."""
    shown = table[["task", "algo", "setting", "trials", "best", "val", "test metric", "n", "covers"]].copy()
    shown["val"] = [f"{v:.3f}" if not math.isnan(v) else "" for v in table["val"]]
    shown.insert(7, "test", [_cell(m, c, 3) for m, c in zip(table["test"], table["test ±"])])
    return shown


def tuning_compute_table(tune_dir: str | Path) -> pd.DataFrame:
    """Per task × algorithm: the trials of its search and what they cost. `flops budgeted` is trials × budget,
    the same for every algorithm by construction; `flops spent` adds each finished trial's overshoot of its
    last step (a trial that did not finish spent less and is counted as `not finished`)."""
    rows = []
    for search_dir in searches(tune_dir):
        trials = load_trials(search_dir)
        if trials.empty:
            continue
        one_protocol(trials, search_dir)
        budget = trials["budget"].iloc[0]
        rows.append({
            "task": trials["task"].iloc[0], "algo": trials["algo"].iloc[0], "trials": len(trials),
            "not finished": int((trials["status"] != "finished").sum()), "unit": budget["unit"],
            "budget per trial": budget["amount"], "budgeted": len(trials) * budget["amount"],
            "flops spent": trials["compute/flops_spent"].sum(), "wall s": trials["wall_s"].sum(),
        })  # fmt: skip
    return pd.DataFrame(rows)


def trials_table(search_dir: str | Path) -> pd.DataFrame:
    """One row per trial of a search: its searched parameters, status and validation score, best first.
    Validation only: a search's test scores (`eval/*`) are not results and are not shown."""
    trials = load_trials(search_dir)
    if trials.empty:
        return trials
    best = best_trial(trials)
    rows = [
        {"trial": Path(t["run_dir"]).name, "params": _format_params(searched(trials, t, search_dir)), "status": t["status"],
         t["objective"]: t["objective_value"], "best": best is not None and t["run_dir"] == best["run_dir"]}
        for _, t in trials.iterrows()
    ]  # fmt: skip
    return pd.DataFrame(rows).sort_values(trials["objective"].iloc[0], ascending=False, na_position="last")


MIN_RISE = 0.01
"""A search has levelled off when the last third of its trials raised its best validation score by less than this:
a fifth of the 0.05 difference the default comparison is powered to detect. (Taking "its best came in the last
third" alone called a search that rose by 0.001 in trial 12 of 12 still rising.)"""


def last_third_rise(values: pd.Series) -> float:
    """How much the last third of a search's trials (in trial order) raised its best validation score; a failed trial
    (NaN) scores nothing. Infinite where no trial before the last third finished, 0 for a search of under 3 trials."""
    before = values.iloc[: len(values) - len(values) // 3].max()
    if math.isnan(before):
        return math.inf
    return float(max(values.max(), before) - before)


def best_so_far_table(tune_dir: str | Path) -> pd.DataFrame:
    """Per search, trial by trial in the order Optuna asked for them: its validation score and the best so far
    (a failed trial scores nothing and leaves the best as it was); `rise` is what its last third of trials added to
    the best, and `levelled` whether that stayed under `MIN_RISE` (where not, more trials may still pay)."""
    rows = []
    for search_dir in searches(tune_dir):
        trials = load_trials(search_dir)
        if trials.empty:
            continue
        trials = trials.assign(trial=[trial_number(d) for d in trials["run_dir"]]).sort_values("trial")
        best = trials["objective_value"].cummax().ffill()
        rise = last_third_rise(trials["objective_value"].reset_index(drop=True))
        rows += [{"task": t["task"], "algo": t["algo"], "trial": i + 1, "value": t["objective_value"], "best so far": b,
                  "rise": rise, "levelled": rise < MIN_RISE} for i, ((_, t), b) in enumerate(zip(trials.iterrows(), best))]  # fmt: skip
    return pd.DataFrame(rows, columns=["task", "algo", "trial", "value", "best so far", "rise", "levelled"])


def rankings(table: pd.DataFrame) -> list[str]:
    """Per task, the algorithms ordered by test mean under tuned and under default settings, and whether the
    order changed (means only: the tuned table's intervals say which gaps are real)."""
    lines = []
    for task, of_task in table.groupby("task", sort=True):
        orders = {
            setting: " > ".join(rows.sort_values("test", ascending=False)["algo"])
            for setting, rows in of_task.dropna(subset=["test"]).groupby("setting")
        }
        if len(orders) == 2:
            same = "the same order" if orders["tuned"] == orders["default"] else "the order changed"
            lines.append(f"{task}: tuned {orders['tuned']}; default settings {orders['default']} ({same}).")
    return lines
