"""Figures of a finished sweep that no table holds: wall time per task, and DPO's passes over its pairs.

    python scripts/sweep_facts.py multirun/default

Wall time is the sum of the runs' own `wall_s` (stage builds included, the results tool not);
passes = `compute/samples` at the budget / the number of preference pairs.
"""

from __future__ import annotations

import sys

from bench.results import find_run_dirs
from bench.rundir import read_summary


def main(paths: list[str]) -> None:
    summaries = [s for s in map(read_summary, find_run_dirs(paths)) if s and s["status"] == "finished"]
    for task in sorted({s["task"] for s in summaries}):
        of_task = [s for s in summaries if s["task"] == task]
        print(f"{task}: {len(of_task)} runs, {sum(s['wall_s'] for s in of_task) / 60:.1f} min of run wall time")
        passes = [s["final"]["compute/samples"] / s["stages"]["preferences"]["pairs"] for s in of_task if s["algo"] == "dpo"]
        if passes:
            print(f"{task}: DPO passes over its pairs: {min(passes):.1f} to {max(passes):.1f}")


if __name__ == "__main__":
    main(sys.argv[1:])
