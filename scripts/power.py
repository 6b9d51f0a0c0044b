"""How many stage seeds, and trainer seeds each, the default comparison needs: from a pilot, per task and pair of
algorithms, the paired difference's variance between stage seeds and between trainer seeds of one stage seed
(bench/results/stats.py: `variance_components`), the n of stage seeds at which a difference of DIFF is detected
with 80 % power at α = 0.05 with 1 and with 2 trainer seeds each, and what each design costs on this machine.

    python scripts/power.py PILOT... [--stage-seeds 0,1,2,3,4] [--config conf/config.yaml [--check]] [--out DIR]

The release's pilot (scripts/release.sh) is the tuning finals (tuned settings, trainer seed 1) and the default
comparison's own runs on the same stage seeds (trainer seed 0): 2 trainer seeds on each. Runs are paired by stage
seed and trainer seed. The design is the cheaper of the two that detects DIFF on every pair of both tasks, with
never fewer stage seeds than the pilot's (the comparison reuses all its runs); its cost is the pilot's mean seconds
per run of each algorithm and task, and per stage build (the `built ... in N s` lines of the runs' logs,
bench/cache.py). `--config` takes the algorithms from the default comparison's sweep; with `--check` the script
exits 3 where that sweep's stage and trainer seeds are not the design's (2 where the pilot sizes none), and
otherwise writes the design to DIR/design.json for the README's headline.

The sd is a point estimate from the pilot's few stage seeds, so the power a design reaches is 80 % only where the
pilot's variances hold; the pairwise tables print each pair's minimum detectable difference at the n they have.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import re
import sys
from pathlib import Path

import pandas as pd
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from bench.results import load_summaries
from bench.results.release import DESIGN
from bench.results.report import _count, provenance
from bench.results.stats import design_sd, seeds_for, variance_components
from bench.results.tuning import best_finals
from bench.tunedir import FINAL

DESIGNS = (1, 2)
"""Trainer seeds per stage seed the design may have."""


STAGE_BUILT = re.compile(r"\[bench\.cache\]\[INFO\] - built (\w+) (\w+) in (\d+) s")


def sweep(config: Path) -> dict[str, list[str]]:
    """The default comparison's sweep (hydra.sweeper.params of `config`): each key's values, as Hydra expands them."""
    parser = OverridesParser.create()
    params = OmegaConf.load(config).hydra.sweeper.params
    values = {}
    for key, value in params.items():
        override = parser.parse_override(f"{key}={value}")
        values[key] = list(override.sweep_string_iterator()) if override.is_sweep_override() else [str(override.value())]
    return values


def pilot_runs(paths: list[str]) -> pd.DataFrame:
    """The pilot's finished runs: a tune directory's final runs of each search's best configuration (bench/results/
    tuning.py), any other directory's runs; a run found twice (one configuration and seeds in two directories) once.
    One configuration per task and algorithm, or the pilot mixes settings."""
    frames = [best_finals(p) if (Path(p) / FINAL).is_dir() else load_summaries([p]).summaries for p in paths]
    frames = [f for f in frames if not f.empty]
    if not frames:
        raise SystemExit(f"power: no runs in {' '.join(paths)}")
    runs = pd.concat(frames, ignore_index=True)
    runs = runs[runs["status"] == "finished"].drop_duplicates(subset=["task", "algo", "group", "stage_seed", "seed"])
    mixed = runs.groupby(["task", "algo"])["group"].nunique()
    if (mixed > 1).any():
        raise SystemExit(f"power: the pilot holds several configurations of {', '.join(f'{t} {a}' for t, a in mixed[mixed > 1].index)} "
                         "(the default comparison's runs at other settings than the tuning's best?)")  # fmt: skip
    return runs


def stage_build_seconds(paths: list[str], pilot: pd.DataFrame) -> pd.Series:
    """Seconds to build one stage seed's stages (SFT, pairs, reward model), per task of the pilot: the mean over its
    stage seeds whose builds a log holds, from every run under `paths` (the run that needed a stage first built it,
    whichever configuration it had); a task none of whose builds is logged is left out."""
    runs = load_summaries(paths).summaries
    runs = runs[runs["task"].isin(pilot["task"].unique()) & runs["stage_seed"].isin(pilot["stage_seed"].unique())]
    built = {}
    for run_dir, task, stage_seed in runs[["run_dir", "task", "stage_seed"]].itertuples(index=False):
        log = Path(run_dir) / "app.log"
        for stage, key, seconds in STAGE_BUILT.findall(log.read_text()) if log.exists() else []:
            built[(task, stage_seed, stage, key)] = int(seconds)
    if not built:
        return pd.Series(dtype=float)
    per_stage_seed = pd.Series(built).groupby(level=[0, 1]).sum()
    return per_stage_seed.groupby(level=0).mean()


def pairs(runs: pd.DataFrame, metric: str, diff: float) -> pd.DataFrame:
    """Per task and pair of algorithms: the paired difference's variance components and the stage seeds it needs."""
    rows = []
    for task, of_task in runs.groupby("task", sort=True):
        values = of_task.set_index(["algo", "stage_seed", "seed"])[metric].astype(float)
        for a, b in itertools.combinations(sorted(of_task["algo"].unique()), 2):
            d = (values[a] - values[b]).dropna().reset_index().rename(columns={metric: "value"})
            between, within = variance_components(d)
            row = {"task": task, "a": a, "b": b, "stage seeds": d["stage_seed"].nunique(),
                   "trainer seeds": int(d.groupby("stage_seed").size().max()) if len(d) else 0, "mean diff": float(d["value"].mean()),
                   "sd between stage seeds": math.sqrt(between), "sd within a stage seed": math.sqrt(within)}  # fmt: skip
            for k in DESIGNS:
                sd = design_sd(between, within, k)
                row[f"sd, {_count(k, 'trainer seed')}"] = sd
                row[f"n, {_count(k, 'trainer seed')}"] = math.nan if math.isnan(sd) else seeds_for(sd, diff)
            rows.append(row)
    return pd.DataFrame(rows)


def run_seconds(runs: pd.DataFrame) -> pd.Series:
    """Seconds of one trainer seed's runs on one stage seed, per task: each algorithm's mean over the pilot, summed."""
    return runs.groupby(["task", "algo"])["wall_s"].mean().groupby(level=0).sum()


def designs(table: pd.DataFrame, runs: pd.DataFrame, run_s: pd.Series, builds: pd.Series) -> pd.DataFrame:
    """Each design (k trainer seeds per stage seed) the pilot sizes on every pair: the stage seeds the pair that
    needs most needs, never fewer than the pilot's own (the comparison reuses its runs, all of them), the runs,
    and their CPU hours on this machine (`run_s` per trainer seed and stage seed, `builds` per stage seed)."""
    if table.empty:
        return pd.DataFrame()
    rows = []
    for k in DESIGNS:
        needed = table[f"n, {_count(k, 'trainer seed')}"]
        if needed.isna().any():
            continue
        n = max(int(needed.max()), runs["stage_seed"].nunique())
        seconds = n * sum(k * run_s[task] + builds.get(task, 0.0) for task in run_s.index)
        rows.append({"trainer seeds": k, "stage seeds": n, "runs": n * k * int(runs.groupby("task")["algo"].nunique().sum()), "CPU h": seconds / 3600})
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+")
    parser.add_argument("--diff", type=float, default=0.05)
    parser.add_argument("--metric", default="eval/gold_reward")
    parser.add_argument("--stage-seeds", help="the pilot's stage seeds (comma-separated); other runs are left out")
    parser.add_argument("--config", type=Path, help="the default comparison's config: the pairs of its algorithms only")
    parser.add_argument("--check", action="store_true", help="exit 3 where --config's stage and trainer seeds are not the design's")
    parser.add_argument("--out", type=Path, help=f"a directory for README.md, and {DESIGN} where --check passed")
    args = parser.parse_args(argv)
    if args.check and not args.config:
        parser.error("--check needs --config")
    runs = pilot_runs(args.paths)
    if args.stage_seeds:
        runs = runs[runs["stage_seed"].isin([int(s) for s in args.stage_seeds.split(",")])]
    comparison = sweep(args.config) if args.config else None
    if comparison:
        runs = runs[runs["algo"].isin(comparison["algo"])]
    table = pairs(runs, args.metric, args.diff)
    run_s, builds = run_seconds(runs), stage_build_seconds(args.paths, runs)
    options = designs(table, runs, run_s, builds)
    chosen = options.loc[[options["CPU h"].idxmin()]].to_dict("records")[0] if len(options) else None
    unsized = table[table.filter(like="n, ").isna().all(axis=1)] if len(table) else table
    verdict = (f"The design: {_count(chosen['stage seeds'], 'stage seed')} × {_count(chosen['trainer seeds'], 'trainer seed')}, {chosen['runs']} runs, "
               f"about {chosen['CPU h']:.1f} CPU h on this machine: a paired difference of {args.diff:g} is detected at 80 % power "
               "(α = 0.05, before Holm's correction) on every pair." if chosen is not None
               else "No design: a pair lacks 2 stage seeds with both its algorithms, or the pilot has no pair.")  # fmt: skip
    text = "\n\n".join([
        f"# The seeds' power: a paired difference of {args.diff:g} in `{args.metric}` at 80 % power, α = 0.05",
        f"The pilot: {len(runs)} finished runs, stage seeds {sorted(runs['stage_seed'].unique().tolist())}, "
        f"trainer seeds {sorted(runs['seed'].unique().tolist())} (`python scripts/power.py {' '.join(argv or sys.argv[1:])}`). "
        "Per pair, the sd of the paired difference between stage seeds and between the trainer seeds of one stage seed "
        "(one-way random-effects ANOVA), the sd of a stage seed's mean over k trainer seeds, and the stage seeds n that "
        f"detect {args.diff:g} (a paired t-test over stage-seed means; the `mdd` of every pairwise table is the same arithmetic). "
        + provenance(runs),
        table.to_markdown(index=False, floatfmt=".4g") if len(table) else "(no pair)",
        "Costs per stage seed: one trainer seed's runs (each algorithm's mean seconds), "
        + ", ".join(f"{task} {seconds:.0f} s" for task, seconds in run_s.items())
        + "; its stages' builds, "
        + ", ".join([f"{task} {builds[task]:.0f} s" if task in builds else f"{task} not logged (costed 0)" for task in sorted(runs["task"].unique())])
        + ". The six-way comparison's other algorithms run on the same seeds, beside this cost.",
        options.to_markdown(index=False, floatfmt=".3g") if len(options) else "",
        verdict + (f" Not sized: {', '.join(f'{t} {a} − {b}' for t, a, b in unsized[['task', 'a', 'b']].itertuples(index=False))}." if len(unsized) else ""),
    ])  # fmt: skip
    print(text)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "README.md").write_text(text + "\n")
    if not args.check:
        return 0
    if chosen is None:
        print("power: the pilot sizes no design (see above): no seeds to check conf/config.yaml against", file=sys.stderr)
        return 2
    want = {"stage_seed": [str(s) for s in range(chosen["stage seeds"])], "seed": [str(s) for s in range(chosen["trainer seeds"])]}
    if any(comparison.get(key) != values for key, values in want.items()):
        print(f"power: {args.config} sweeps stage_seed {','.join(comparison.get('stage_seed', []))} and seed {','.join(comparison.get('seed', []))}, "
              f"not the design: set hydra.sweeper.params stage_seed: range(0,{chosen['stage seeds']}) and seed: "
              f"{','.join(want['seed'])}, commit, and run again", file=sys.stderr)  # fmt: skip
        return 3
    if args.out:  # the seeds the comparison runs, for the README's headline
        (args.out / DESIGN).write_text(json.dumps(chosen | {"difference": args.diff}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
