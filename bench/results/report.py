"""The results directory: every table as CSV, Markdown and LaTeX, the plots, and a README that says
what was read, at which commit, and what the intervals cover."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench.results.load import Runs
from bench.results.plots import plot_task
from bench.results.stats import PAIRED
from bench.results.tables import (
    _cell,
    _finished,
    compute_matched_table,
    kl_matched_table,
    memory_table,
    pairwise_table,
    paper_table,
    ranking_table,
    summary_table,
)  # fmt: skip
from bench.results.tuning import describe_best, paper_tuned, rankings, trials_table, tuned_table, tuning_compute_table
from bench.tunedir import read_protocol


def _write_table(df: pd.DataFrame, out: Path, name: str) -> None:
    """CSV with every digit; Markdown and LaTeX for reading, an empty cell where a value does not exist."""
    df.to_csv(out / f"{name}.csv", index=False)
    shown = df.astype(object).where(df.notna(), "")
    (out / f"{name}.md").write_text(shown.to_markdown(index=False, floatfmt=".4g") + "\n")
    latex = shown.to_latex(index=False, float_format="%.4g", escape=True)  # escapes headers too (gold\_reward)
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
    return " ".join(words)


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
    tables = {"tuned": tuned_table(tune_dir), "tuning_compute": tuning_compute_table(tune_dir)}
    for name, df in tables.items():
        _write_table(df, out, name)
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
    ]
    if record:
        lines += [f"Protocol: `{record['command']}`, {record['wall_s'] / 60:.1f} min wall on the machine it ran on.", ""]
    readme = out / "README.md"
    head, _, rest = readme.read_text().partition("\n## ")
    readme.write_text(head + "\n" + "\n".join(lines) + "\n## " + rest)
    return tables


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
