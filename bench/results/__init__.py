"""The results tool: runs -> tidy pandas frames -> tables and plots, one module per concern.

    load      run directories or a wandb project -> frames (load_summaries, load_runs, load_wandb)
    groups    which runs are one configuration, and the settings that tell rows apart
    stats     intervals, paired and Welch tests, interpolation on a run's curve
    tables    summary, paper, compute-matched, memory, pairwise, ranking (equal FLOPs vs equal seconds)
    samples   one test prompt per group: the SFT model's completion and the trained policy's
    tuning    the tuning protocol: best configuration of a search, tuned table, tuning compute
    plots     per task: gold reward vs compute, reward-KL frontier, proxy vs gold
    report    writes everything (CSV, Markdown, LaTeX, PNG/PDF, README) to one directory
    release   a release: its one-commit check and results/README.md; headline: the README section from it
    cli       `rlhf-bench-results`

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

from bench.results.cli import main
from bench.results.groups import distinguishing_keys, groups, label
from bench.results.load import Runs, find_run_dirs, load_runs, load_summaries, load_wandb
from bench.results.plots import plot_task, task_figure
from bench.results.report import write_results
from bench.results.stats import group_interval, interpolate_at, mean_ci, paired, welch
from bench.results.tables import (
    compute_matched_table, kl_matched_table, memory_table, pairwise_table, paper_table, ranking_table, summary_table,
)  # fmt: skip
from bench.results.tuning import best_trial, load_trials, tuned_table, tuning_compute_table

__all__ = [
    "Runs", "compute_matched_table", "distinguishing_keys", "kl_matched_table", "find_run_dirs", "group_interval", "groups", "interpolate_at",
    "label", "load_runs", "load_summaries", "load_wandb", "main", "mean_ci", "memory_table", "paired", "pairwise_table",
    "paper_table", "plot_task", "ranking_table", "summary_table", "task_figure", "welch", "write_results",
    "best_trial", "load_trials", "tuned_table", "tuning_compute_table",
]  # fmt: skip
