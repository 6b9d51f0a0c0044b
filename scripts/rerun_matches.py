"""Does a finished run reproduce? Run it again from its own overrides and compare every logged row.

    python scripts/rerun_matches.py RUN_DIR                              # at this commit, the same stage cache
    python scripts/rerun_matches.py RUN_DIR --cache /tmp/fresh --threads 1   # stages rebuilt from scratch, 1 thread

Reads `RUN_DIR/.hydra/overrides.yaml`, runs `rlhf-bench` with them into a temporary sweep, and
prints whether every row of metrics.jsonl (wall-clock fields aside) is the same bit for bit,
both final gold rewards, and, with --cache, whether the rebuilt SFT weights are byte-identical.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import tempfile
from pathlib import Path

import yaml

from bench import rundir

WALL_CLOCK = ("perf/", "memory/", "compute/seconds")


def rows(run_dir: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if not k.startswith(WALL_CLOCK)} for r in rundir.read_metrics(run_dir)]


def sft_digest(cache: Path, summary: dict) -> str:
    weights = cache / "sft" / summary["stages"]["sft"]["hash"] / "model.safetensors"
    return hashlib.sha256(weights.read_bytes()).hexdigest()[:16]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--cache", type=Path, help="a stage cache to build the stages in (default: the configured one)")
    parser.add_argument("--threads", type=int, help="OMP/MKL threads of the rerun")
    args = parser.parse_args()
    overrides = yaml.safe_load((args.run_dir / ".hydra" / "overrides.yaml").read_text())
    env = os.environ | ({"OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)} if args.threads else {})
    with tempfile.TemporaryDirectory() as sweep:
        extra = [f"cache_dir={args.cache}"] if args.cache else []
        subprocess.run(["rlhf-bench", *overrides, *extra, f"hydra.sweep.dir={sweep}"], env=env, check=True, capture_output=True)
        (again,) = [p.parent for p in Path(sweep).glob("*/summary.json")]
        before, after = rundir.read_summary(args.run_dir), rundir.read_summary(again)
        print(f"{args.run_dir.name}: rows identical: {rows(args.run_dir) == rows(again)}; final gold "
              f"{before['final']['eval/gold_reward']:.4f} (published) vs {after['final']['eval/gold_reward']:.4f} (rerun, "
              f"commit {str(after['git_commit'])[:7]})")
        if args.cache:
            published_cache = Path(json.loads((args.run_dir / rundir.CONFIG).read_text())["cache_dir"])
            print(f"SFT weights byte-identical to the published cache's: {sft_digest(args.cache, after) == sft_digest(published_cache, before)}")


if __name__ == "__main__":
    main()
