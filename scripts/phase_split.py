"""Where a training step's time goes: rollout (sampling), scoring (reference, reward model, critic,
old log-probs) and update, per algorithm.

    python scripts/phase_split.py multirun/2026-11-30/12-00-00 [more run directories...]

Reads the runs' metrics.jsonl (`perf/phase_s/*`, `perf/step_s`) and prints the mean
seconds per step of each phase and the sampling share (`perf/generation_share`), per
task and algorithm (and the settings that tell a sweep's groups apart).
"""

from __future__ import annotations

import sys

from bench.results import distinguishing_keys, load_runs

PHASES = ("perf/phase_s/rollout", "perf/phase_s/scoring", "perf/phase_s/update", "perf/step_s", "perf/flops_per_s")


def main() -> None:
    rows = load_runs(sys.argv[1:])
    steps = rows[rows["status"].eq("finished") & rows["perf/step_s"].notna()]
    cols = [c for c in PHASES if c in steps]
    keys = distinguishing_keys(steps.drop_duplicates("run_dir"))
    for key in keys:
        steps[key] = steps["settings"].map(lambda settings: settings.get(key))
    table = steps.groupby(["task", "algo", *keys], dropna=False)[cols].mean()
    table["generation_share"] = table["perf/phase_s/rollout"].fillna(0) / table["perf/step_s"]
    print(table.to_markdown(floatfmt=".3g"))


if __name__ == "__main__":
    main()
