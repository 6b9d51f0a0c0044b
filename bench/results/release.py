"""`python -m bench.results.release OUT --commit C --runs DIR ...`: the last step of scripts/release.sh. Checks that
every run of the release was computed by the code of one commit, C, and writes OUT/README.md: that commit, the
library versions, the wall time and parts it took, and a link to each result set; and OUT/release.json, the
same facts for the README's headline (bench/results/headline.py).

A run reused from an earlier commit T counts as C's when T's code is C's (`git diff T C -- bench pyproject.toml`
is empty, `bench/results/` aside: it reads runs and computes none of them, and the tables are C's; the tuning
protocol picks its best trial with it, and what it picked is in the final runs' configs and conf/tuned): what else
differs is configuration (conf/, e.g. the tuned settings committed after a protocol ran), and a run is reused only
under the same resolved config (its identity) and execution. The README names such
commits; a run of any other commit fails the release, and so do two runs of one stage seed that read stages
of other contents (a part that rebuilt them differently)."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd

from bench.results.load import load_summaries
from bench.results.report import provenance
from bench.rundir import SUMMARY

RECORD = "release.json"
"""OUT/RECORD: what a release was (commit, runs, wall_s, parts, command), for the README's headline."""

DESIGN = "design.json"
"""power/DESIGN: the stage and trainer seeds scripts/power.py chose for the default comparison, for the headline."""

SETS = {
    "default": "the default comparison (a plain `rlhf-bench`): PPO, GRPO, DPO on both built-in tasks, with the aggregate across them",
    "power": "the seeds' power: from the pilot (the tuning finals and the default comparison's runs on their stage seeds), each pair's variance between stage seeds and between trainer seeds, and the stage × trainer seeds the default comparison runs",
    "six": "the six-way comparison: the default comparison's runs and RLOO, REINFORCE++, best-of-N on the same seeds",
    "tuned/sentiment": "the tuning protocol on sentiment: each algorithm tuned against its defaults",
    "tuned/arithmetic": "the tuning protocol on arithmetic",
    "smollm2": "the real-model verdict: PPO, GRPO, DPO, RLOO (each at its tuned settings) and best-of-N on SmolLM2-135M-Instruct, LoRA in bf16, on this CPU (experiment=smollm2_cpu)",
    "smollm2/precision": "bf16 against float32 on the real model: the verdict's GRPO runs again in float32, paired by stage seed",
    "tuned/smollm2": "the tuning protocol on the real model: a short search per algorithm",
}


def describe(record: dict) -> str:
    """The release in one sentence: its command, commit, runs, wall time and parts."""
    parts = record["parts"]
    return (f"`{record['command']}` at commit `{record['commit']}`, {record['runs']} runs, {record['wall_s'] / 3600:.1f} h wall "
            f"in {parts} part{'s' if parts != 1 else ''}")  # fmt: skip


def same_code_as(commit: str, release: str) -> bool:
    """Whether `commit`'s code (bench/ but the results tool, pyproject.toml) is `release`'s, by git."""
    paths = ["bench", ":(exclude)bench/results", "pyproject.toml"]
    diff = subprocess.run(["git", "diff", "--quiet", commit, release, "--", *paths], capture_output=True)
    return diff.returncode == 0


def rebuilt_stages(runs: pd.DataFrame) -> list[str]:
    """Stages that two runs of one task and stage seed read with other contents: a release in several parts
    rebuilds its stages in each (the cache is not kept), and runs paired by stage seed must share them."""
    contents: dict[tuple, set] = {}
    for run_dir, task, stage_seed in runs[["run_dir", "task", "stage_seed"]].itertuples(index=False):
        stages = json.loads((Path(run_dir) / SUMMARY).read_text()).get("stages", {})
        for name, stage in stages.items():
            contents.setdefault((task, stage_seed, name, stage["hash"]), set()).add(stage.get("content"))
    return [f"{task} stage seed {seed} {name} {key}" for (task, seed, name, key), found in sorted(contents.items()) if len(found) > 1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.results.release", description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--commit", required=True)
    parser.add_argument("--runs", required=True, help="the release's run directories")
    parser.add_argument("--parts", type=int, required=True)
    parser.add_argument("--wall-s", type=float, required=True)
    parser.add_argument("--command", required=True)
    args = parser.parse_args(argv)
    runs = load_summaries([args.runs]).summaries
    same_code = {c for c in runs["git_commit"].dropna().unique() if c == args.commit or same_code_as(c, args.commit)}
    others = runs[~runs["git_commit"].isin(same_code)]
    if runs.empty or len(others):
        print(f"release: {len(others)} of {len(runs)} runs in {args.runs} were computed at another commit than {args.commit} "
              f"(first: {others['run_dir'].iloc[0] if len(others) else '-'}); run the release in a fresh RELEASE_RUNS", file=sys.stderr)  # fmt: skip
        return 1
    rebuilt = rebuilt_stages(runs)
    if rebuilt:
        print(f"release: runs of one stage seed read other stage contents ({'; '.join(rebuilt[:3])}): "
              "a rebuild did not give the same weights; rerun that stage seed's runs", file=sys.stderr)  # fmt: skip
        return 1
    out = Path(args.out)
    record = {"commit": args.commit, "runs": len(runs), "wall_s": args.wall_s, "parts": args.parts, "command": args.command}
    lines = [
        "# Results: one release",
        "",
        f"Every number here comes from one release: {describe(record)} "
        "(a part: one invocation; a stopped one reuses every finished run when started again).",
        "",
        provenance(runs),
        *([f"Commits {', '.join(f'`{c}`' for c in sorted(same_code - {args.commit}))} have the code of `{args.commit}` "
           "(bench/ but the results tool, and pyproject.toml, unchanged; their runs are reused under the same resolved config)."] if len(same_code) > 1 else []),
        "",
        *[f"- [{name}/]({name}/README.md): {what}" for name, what in SETS.items() if (out / name / "README.md").exists()],
    ]
    (out / "README.md").write_text("\n".join(lines) + "\n")
    (out / RECORD).write_text(json.dumps(record, indent=1) + "\n")
    print(f"release: {out}/README.md, commit {args.commit}, {len(runs)} runs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
