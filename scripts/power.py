"""How many stage seeds the default comparison needs: from a pilot sweep, per task and pair of algorithms, the
standard deviation of the paired differences of stage-seed means, the minimum detectable difference at the n it
has, and the n at which a difference of DIFF is detected with 80 % power at α = 0.05 (bench/results/stats.py).

    python scripts/power.py multirun/pilot [--diff 0.05]

The default comparison's stage seeds (conf/config.yaml) are the largest n over both built-in tasks' pairs. Trainer
seeds per stage seed shrink the within-stage part of that sd: compare a pilot of 1 and of 2 trainer seeds."""

from __future__ import annotations

import argparse
import itertools
import math

import pandas as pd

from bench.results import load_summaries
from bench.results.stats import minimum_detectable_difference, seeds_for, stage_means


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+")
    parser.add_argument("--diff", type=float, default=0.05)
    parser.add_argument("--metric", default="eval/gold_reward")
    args = parser.parse_args(argv)
    runs = load_summaries(args.paths).summaries
    runs = runs[runs["status"] == "finished"]
    rows = []
    for task, of_task in runs.groupby("task", sort=True):
        means = {algo: stage_means(of_algo, args.metric) for algo, of_algo in of_task.groupby("algo", sort=True)}
        for a, b in itertools.combinations(sorted(means), 2):
            d = (means[a] - means[b]).dropna()
            sd = float(d.std(ddof=1)) if len(d) >= 2 else math.nan
            rows.append({"task": task, "a": a, "b": b, "stage seeds": len(d), "trainer seeds": int(of_task.groupby("stage_seed")["seed"].nunique().max()),
                         "mean diff": float(d.mean()), "sd of diff": sd,
                         "mdd now": minimum_detectable_difference(sd / math.sqrt(len(d)), len(d) - 1) if len(d) >= 2 else math.nan,
                         f"n for {args.diff:g}": seeds_for(sd, args.diff) if sd > 0 else math.nan})  # fmt: skip
    table = pd.DataFrame(rows)
    print(table.to_markdown(index=False, floatfmt=".4g"))
    print(f"stage seeds for a paired difference of {args.diff:g} at 80 % power on every pair: {table[f'n for {args.diff:g}'].max():.0f}")


if __name__ == "__main__":
    main()
