"""`rlhf-bench-results`: runs (directories or a wandb project) -> tables and plots."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from bench.results.load import load_runs, load_summaries, load_wandb
from bench.results.report import write_results, write_search, write_tuning
from bench.results.tuning import describe_best, paper_tuned
from bench.tunedir import DEFAULT, FINAL, is_search_dir, is_tune_dir

log = logging.getLogger("rlhf-bench-results")


def default_out(run_dirs: list[str]) -> Path:
    """Next to the runs read: `<their common directory>/results` (a sweep's own results/), never the cwd's."""
    return Path(os.path.commonpath([str(Path(d).resolve().parent) for d in run_dirs])) / "results"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rlhf-bench-results", description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", help="run directories, sweep directories or globs")
    parser.add_argument("--wandb", metavar="ENTITY/PROJECT", help="read the runs from a wandb project instead")
    parser.add_argument("--sweep", metavar="TAG", help="with --wandb: only the runs of this sweep (tagged sweep:<TAG>)")
    parser.add_argument("--out", help="where the tables and plots go (default: <the runs' directory>/results, "
                                      "or wandb-results/<entity>_<project> with --wandb)")  # fmt: skip
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    if bool(args.paths) == bool(args.wandb):
        parser.error("give run directories or --wandb ENTITY/PROJECT (one of the two)")
    if args.sweep and not args.wandb:
        parser.error("--sweep selects runs of a wandb project: give --wandb ENTITY/PROJECT")
    searches = [p for p in args.paths if is_search_dir(p)]
    tuning = [p for p in args.paths if is_tune_dir(p)]
    if (searches or tuning) and len(args.paths) > 1:
        parser.error("a search directory (an Optuna sweep) or a tune directory is read alone")
    if searches:
        out = Path(args.out) if args.out else Path(searches[0]) / "results"
        print(write_search(searches[0], out).to_markdown(index=False, floatfmt=".4g"))
        print(describe_best(searches[0]))
        print(f"rlhf-bench-results: trials in {out}")
        return 0
    if args.wandb:
        runs, curves = load_wandb(args.wandb, sweep=args.sweep)
    else:
        # a tune directory: the tables of its final and default runs (the search trials are not results)
        paths = [str(Path(tuning[0]) / part) for part in (FINAL, DEFAULT)] if tuning else args.paths
        runs, curves = load_summaries(paths), load_runs(paths)
    if runs.summaries.empty:
        log.error("no runs found in %s", " ".join(args.paths) or args.wandb)
        return 1
    if args.out:
        out = Path(args.out)
    elif args.wandb:
        out = Path("wandb-results") / args.wandb.replace("/", "_")
    else:
        out = default_out(list(runs.summaries["run_dir"]))
    tables = write_results(runs, curves, out, args.paths or [f"--wandb {args.wandb}"])
    if tuning:
        tables |= write_tuning(tuning[0], out)
        print(paper_tuned(tables["tuned"]).to_markdown(index=False))
    else:
        print(tables["paper"].to_markdown(index=False))
    print(f"rlhf-bench-results: tables and plots in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
