"""`rlhf-bench-results`: runs (directories or a wandb project) -> tables and plots."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from bench.results.load import load_runs, load_summaries, load_wandb
from bench.results.report import write_results, write_tuning
from bench.results.tuning import describe_best, is_search_dir, is_tune_dir

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
    if args.wandb:
        runs, curves = load_wandb(args.wandb, sweep=args.sweep)
    else:
        tuning = [p for p in args.paths if is_tune_dir(p)]
        if tuning and len(args.paths) > 1:
            parser.error("a tune directory is read alone")
        # a tune directory: the tables of its final and default runs (the search trials are not results)
        paths = [str(Path(tuning[0]) / part) for part in ("final", "default")] if tuning else args.paths
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
    if not args.wandb and tuning:
        tables |= write_tuning(tuning[0], out)
        print(tables["tuned"].to_markdown(index=False))
    else:
        print(tables["paper"].to_markdown(index=False))
    for search in [p for p in args.paths if is_search_dir(p)]:
        print(describe_best(search))
    print(f"rlhf-bench-results: tables and plots in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
