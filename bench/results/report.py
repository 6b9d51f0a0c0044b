"""The results directory: every table as CSV, Markdown and LaTeX, the plots, and a README that says
what was read, at which commit, and what the intervals cover."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from bench.results import aggregate
from bench.results.load import Runs
from bench.results.plots import plot_best_so_far, plot_profile, plot_task
from bench.results.samples import samples_markdown, samples_table
from bench.results.stats import PAIRED
from bench.results.tables import (
    _cell,
    _finished,
    blank_missing,
    bracketed,
    compute_matched_table,
    kl_matched_table,
    markdown,
    memory_table,
    pairwise_table,
    paper_table,
    ranking_table,
    sft_spread,
    sft_table,
    summary_table,
)  # fmt: skip
from bench.results.tuning import (
    MIN_RISE,
    best_so_far_table,
    describe_best,
    paper_tuned,
    rankings,
    trials_table,
    tuned_table,
    tuning_compute_table,
)  # fmt: skip
from bench.tunedir import read_protocol


def _write_table(df: pd.DataFrame, out: Path, name: str) -> None:
    """CSV with every digit; Markdown and LaTeX for reading, an empty cell where a value does not exist."""
    df.to_csv(out / f"{name}.csv", index=False)
    (out / f"{name}.md").write_text(markdown(df) + "\n")
    latex = blank_missing(df).to_latex(index=False, float_format="%.4g", escape=True)  # escapes headers too (gold\_reward)
    (out / f"{name}.tex").write_text(latex.replace("±", "$\\pm$"))


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
    if len(pairwise):
        words.append(
            f"A winner is named where the Holm-adjusted p (`p_holm`, over the table's {_count(int(pairwise['family'].iloc[0]), 'test')}) "
            "is below 0.05."
        )
    return " ".join(words)


def detectable(pairwise: pd.DataFrame) -> list[str]:
    """Per task, the smallest true difference its tests detect with 80 % power: at α = 0.05 for one comparison
    (`mdd`) and at Holm's strictest level, α over the table's family (`mdd_holm`), the range over its pairs at
    the n they have."""
    lines = []
    span = lambda low, high: f"{low:.3f}" if math.isclose(low, high, rel_tol=0.005) else f"{low:.3f} to {high:.3f}"  # noqa: E731
    for task, of_task in pairwise.dropna(subset=["mdd"]).groupby("task", sort=True):
        ns, family = ", ".join(sorted(of_task["n"].unique())), int(of_task["family"].iloc[0])
        lines.append(f"{task}: at n = {ns}, a true difference in {of_task['metric'].iloc[0]} is detected with 80 % power "
                     f"from {span(of_task['mdd'].min(), of_task['mdd'].max())} by one test at α = 0.05, and by the verdict "
                     f"(Holm over the table's {family} tests, its strictest level α/{family}) from "
                     f"{span(of_task['mdd_holm'].min(), of_task['mdd_holm'].max())} (closed form: below 5 stage seeds "
                     "the exact values are up to 18 % larger).")  # fmt: skip
    return lines


def _sft_section(sft: pd.DataFrame) -> list[str]:
    """The SFT models per task × stage seed and the spread of their test score, where the summaries hold it."""
    if sft.empty or sft[["test gold_reward", "test accuracy"]].isna().all().all():
        return []
    return ["## The SFT models (one per task × stage seed, shared by every algorithm)", "",
            markdown(sft), "", *[f"- {line}" for line in sft_spread(sft)], ""]  # fmt: skip


def _aggregate_section(tables: dict[str, pd.DataFrame]) -> list[str]:
    """Across tasks: what 0 and 1 mean per task, IQM and mean with their intervals, the probabilities of improvement."""
    shown = tables["aggregate"][["algo", "tasks", "n per task"]].copy()
    for what in ("IQM", "mean"):
        shown[what] = [bracketed(*r) for r in tables["aggregate"][[what, f"{what} low", f"{what} high"]].itertuples(index=False)]
    improvement = tables["improvement"].copy()
    improvement["P(X > Y)"] = [bracketed(*r, decimals=2) for r in improvement[["P(X > Y)", "low", "high"]].itertuples(index=False)]
    return [
        "## Across tasks (normalised: 0 = the run's own SFT model, 1 = the task's best)",
        "",
        "Each run's final gold reward normalised by its stage seed's SFT model and the task's best achievable score; "
        "the units are stage-seed means, and the 95 % intervals a stratified bootstrap (stage seeds resampled within "
        f"each task, {aggregate.REPS} resamples, percentile; bench/results/aggregate.py). IQM: the mean of the middle 50 %.",
        "",
        tables["task_scale"].to_markdown(index=False, floatfmt=".4g"),
        "",
        shown.to_markdown(index=False),
        "",
        "Probability of improvement, P(X > Y): the chance that a stage seed of X beats one of Y on a task, averaged over tasks.",
        "",
        improvement[["x", "y", "P(X > Y)"]].to_markdown(index=False),
        "",
        "![performance profile](profile.png)",
        "",
    ]


def _ranking_markdown(ranking: pd.DataFrame) -> str:
    if ranking.empty:
        return "(no finished runs)"
    shown = ranking.drop(columns=[c for c in ranking.columns if c.endswith((": mean", ": ±", ": n"))]).copy()
    for unit in ("flops", "seconds"):
        shown.insert(shown.columns.get_loc(f"{unit}: rank"), f"gold at equal {unit}",
                     [_cell(m, c, 3) for m, c in zip(ranking[f"{unit}: mean"], ranking[f"{unit}: ±"])])  # fmt: skip
    return shown.to_markdown(index=False, floatfmt=".4g")


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
        "kl_matched": kl_matched_table(table, curves),
        "memory": memory_table(table),
        "pairwise": pairwise_table(table),
        "ranking": ranking_table(table, curves),
        "sft": sft_table(table),
        "samples": samples_table(table),
    }
    tables["paper"] = paper_table(tables["summary"])
    across = aggregate.spans_tasks(table)
    if across:
        tables |= {"aggregate": aggregate.aggregate_table(table), "improvement": aggregate.improvement_table(table),
                   "task_scale": aggregate.task_scale(table)}  # fmt: skip
    for name, df in tables.items():
        _write_table(df, out, name)
    plots = [p for task in sorted(_finished(table)["task"].unique()) for p in plot_task(task, curves, out)]
    if across:
        plots += plot_profile(aggregate.performance_profile(table), out)
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
        *(_aggregate_section(tables) if across else []),
        *_sft_section(tables["sft"]),
        "## Gold reward at equal compute",
        "",
        tables["compute_matched"].to_markdown(index=False, floatfmt=".4g"),
        "",
        "## Score at equal KL to the reference (the reward-KL frontier)",
        "",
        "Each run's evaluations (the SFT model at KL 0 first) ordered by `eval/kl_to_ref` and read off at these KLs; "
        "empty where a group's runs never reached that KL. Best-of-N's KL is estimated from its candidates (at most log N - (N - 1)/N).",
        "",
        tables["kl_matched"].to_markdown(index=False, floatfmt=".4g"),
        "",
        "## Ranked at equal FLOPs and at equal seconds",
        "",
        "Gold reward read off each run's curve at the same FLOPs and at the same wall-clock seconds of training "
        "(`at flops`, `at seconds`); rank 1 is the best mean; `agree` is false where the two rankings of a task differ.",
        "",
        _ranking_markdown(tables["ranking"]),
        "",
        "## Pairwise (final gold reward)",
        "",
        tables["pairwise"].to_markdown(index=False, floatfmt=".4g"),
        "",
        *[f"- {line}" for line in detectable(tables["pairwise"])],
        "",
        "## Samples before and after",
        "",
        "One test prompt per group (its run of the lowest stage seed and seed): the SFT model's completion at "
        "compute 0 and the trained policy's at its last evaluation, each on the evaluator's fixed stream for it (two "
        "streams: independent draws) (`samples.csv`; every logged sample: each run's `samples.jsonl`).",
        "",
        *samples_markdown(tables["samples"]),
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


def write_tuning(tune_dir: str | Path, out: Path) -> dict[str, pd.DataFrame]:
    """The tuned table and the tuning compute of a tune directory, written beside the other tables and
    put first in the README."""
    tables = {"tuned": tuned_table(tune_dir), "tuning_compute": tuning_compute_table(tune_dir), "best_so_far": best_so_far_table(tune_dir)}
    for name, df in tables.items():
        _write_table(df, out, name)
    if not tables["best_so_far"].empty:
        plot_best_so_far(tables["best_so_far"], out)
    record = read_protocol(tune_dir)
    compute = tables["tuning_compute"]
    lines = [
        "## Tuned against default settings (test prompts)",
        "",
        "Each algorithm's search: the same number of Optuna trials over its space (conf/tune/<algo>.yaml), each a "
        "full-budget run scored on the validation prompts (`val`: the best trial's score). The best configuration and "
        "the default settings then ran on fresh trainer seeds; `test` is their score on the test prompts "
        "(mean ± 95 % interval, n and what it covers).",
        "",
        paper_tuned(tables["tuned"]).to_markdown(index=False),
        "",
        *[f"- {line}" for line in rankings(tables["tuned"])],
        "",
        "Tuning compute per algorithm (every trial runs at the same budget, so equal by construction):",
        "",
        compute.to_markdown(index=False, floatfmt=".4g") if not compute.empty else "(no search)",
        "",
        *_levelled(tables["best_so_far"]),
    ]
    if record:
        lines += [f"Protocol: `{record['command']}`, {record['wall_s'] / 60:.1f} min wall on the machine it ran on.", ""]
    readme = out / "README.md"
    head, _, rest = readme.read_text().partition("\n## ")
    readme.write_text(head + "\n" + "\n".join(lines) + "\n## " + rest)
    return tables


def _levelled(best_so_far: pd.DataFrame) -> list[str]:
    """The best-so-far plot and, per search, whether it levelled off (its last third of trials raised its best by
    less than `MIN_RISE`)."""
    if best_so_far.empty:
        return []
    lines = ["Best validation score so far against trial (`best_so_far.csv`):", "", "![best so far](best_so_far.png)", ""]
    for (task, algo), rows in best_so_far.groupby(["task", "algo"], sort=True):
        first = rows.iloc[0]
        state = "levelled off" if first["levelled"] else "still rising (more trials may pay)"
        lines.append(f"- {algo} on {task}: {state}: the last third of its {len(rows)} trials raised the best by "
                     f"{first['rise']:.3f} (levelled: under {MIN_RISE}); best {rows['best so far'].iloc[-1]:.4f}.")  # fmt: skip
    return lines + [""]


def write_search(search_dir: str | Path, out: Path) -> pd.DataFrame:
    """A search's own results: its trials (searched parameters, status, validation score) and its best
    configuration. No test score: those are measured by the final runs only."""
    out.mkdir(parents=True, exist_ok=True)
    trials = trials_table(search_dir)
    _write_table(trials, out, "trials")
    lines = [
        "# Search", "", f"Regenerate: `rlhf-bench-results {search_dir} --out {out}`", "", describe_best(search_dir), "",
        "Trials, best validation score first (test scores of a search are not results and are not shown):", "",
        trials.to_markdown(index=False, floatfmt=".4g") if not trials.empty else "(no trials)",
    ]  # fmt: skip
    (out / "README.md").write_text("\n".join(lines) + "\n")
    return trials
