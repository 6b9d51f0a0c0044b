"""`python -m bench.results.headline OUT --readme README.md`: the README's headline section, written from one
release's result sets in OUT (scripts/release.sh runs it last), so that the README shows release numbers only
and none copied by hand. It reads the tables the results tool wrote there (CSV, every digit), never the runs,
and replaces what lies between the two marker lines in the README."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

import pandas as pd

from bench.results.report import detectable
from bench.results.tables import sft_spread
from bench.results.tuning import rankings

BEGIN = "<!-- headline: written by `python -m bench.results.headline` from the release in results/; edits here are overwritten -->"
END = "<!-- headline end -->"
RELEASE = "release.json"
"""What release.py records of the release: commit, runs, wall_s, parts, command."""


def _read(out: Path, name: str) -> pd.DataFrame:
    path = out / f"{name}.csv"
    return pd.read_csv(path) if path.exists() and path.stat().st_size > 1 else pd.DataFrame()


def _interval(mean: float, low: float, high: float) -> str:
    return f"{mean:.3f}" if math.isnan(low) else f"{mean:.3f} [{low:.3f}, {high:.3f}]"


def _p(p: float) -> str:
    return "" if math.isnan(p) else f"{p:.2g}" if p >= 0.001 else "< 0.001"


def _md(df: pd.DataFrame) -> str:
    return df.astype(object).where(df.notna(), "").to_markdown(index=False)


def _verdicts(pairwise: pd.DataFrame) -> list[str]:
    """The pairwise table as the headline shows it: a − b with its interval, Holm's p, the verdict, then per task
    the smallest difference the tests detect."""
    if pairwise.empty:
        return []
    shown = pd.DataFrame({
        "task": pairwise["task"], "a − b": pairwise["a"] + " − " + pairwise["b"],
        "difference": [f"{d:+.3f} ± {c:.3f}" for d, c in zip(pairwise["diff"], pairwise["ci95"])],
        "n": pairwise["n"], "p (Holm)": pairwise["p_holm"].map(_p), "verdict": pairwise["winner"],
    })  # fmt: skip
    family = int(pairwise["family"].iloc[0])
    return [f"Pairwise tests: {pairwise['test'].iloc[0]}, Holm's correction over the table's {family} tests, a winner "
            "where its p < 0.05.", "", _md(shown), "", *[f"- {line}" for line in detectable(pairwise.astype({"n": str}))], ""]  # fmt: skip


def _scores(paper: pd.DataFrame) -> str:
    columns = ["task", "algo", *[c for c in ("gold reward", "KL to ref", "win rate vs SFT", "train s") if c in paper], "n", "covers"]
    return _md(paper[columns])


def _aggregate(aggregate: pd.DataFrame) -> list[str]:
    if aggregate.empty:
        return []
    aggregate = aggregate.sort_values("IQM", ascending=False)
    shown = pd.DataFrame({
        "algo": aggregate["algo"],
        "IQM [95 % CI]": [_interval(*r) for r in aggregate[["IQM", "IQM low", "IQM high"]].itertuples(index=False)],
        "mean [95 % CI]": [_interval(*r) for r in aggregate[["mean", "mean low", "mean high"]].itertuples(index=False)],
        "n per task": aggregate["n per task"],
    })  # fmt: skip
    return [_md(shown), ""]


def _default_section(out: Path, at: str) -> list[str]:
    where = out / "default"
    if not where.is_dir():
        return []
    sft = _read(where, "sft")
    return [
        "### Which wins where: the default comparison",
        "",
        f"PPO, GRPO and DPO at their tuned settings (a plain `rlhf-bench`), on both built-in tasks; "
        f"mean ± 95 % interval over the stage seeds ([{at}/default/]({at}/default/README.md)). The gold reward is the "
        "hidden judge's score on the test prompts; on arithmetic it is the accuracy.",
        "",
        _scores(_read(where, "paper")),
        "",
        *[f"- {line}" for line in sft_spread(sft)],
        "",
        "Across the two tasks, each run normalised by its own SFT model (0) and the task's best score (1); IQM and "
        "mean with stratified bootstrap 95 % intervals over the stage seeds:",
        "",
        *_aggregate(_read(where, "aggregate")),
        *_verdicts(_read(where, "pairwise")),
    ]


def _six_section(out: Path, at: str) -> list[str]:
    aggregate = _read(out / "six", "aggregate")
    if aggregate.empty:
        return []
    return [
        "### Six algorithms on the same seeds",
        "",
        f"RLOO, REINFORCE++ and best-of-N beside them, normalised as above ([{at}/six/]({at}/six/README.md): "
        "per task, the pairwise tests and the probability of improvement of each pair):",
        "",
        *_aggregate(aggregate),
    ]


def _tuned_section(out: Path, at: str) -> list[str]:
    tasks = [t for t in ("sentiment", "arithmetic") if not _read(out / "tuned" / t, "tuned").empty]
    if not tasks:
        return []
    lines = ["### Tuned against untuned", ""]
    for task in tasks:
        tuned = _read(out / "tuned" / task, "tuned")
        cell = lambda rows: "" if rows.empty or math.isnan(rows["test"].iloc[0]) else f"{rows['test'].iloc[0]:.3f} ± {rows['test ±'].iloc[0]:.3f}"  # noqa: E731
        rows = []
        for algo, of_algo in tuned.groupby("algo", sort=True):
            best = of_algo[of_algo["setting"] == "tuned"]
            rows.append({"algo": algo, "trials": int(best["trials"].iloc[0]), "best (searched)": best["best"].iloc[0],
                         "test, tuned": cell(best), "test, defaults": cell(of_algo[of_algo["setting"] == "default"]),
                         "n": int(best["n"].iloc[0])})  # fmt: skip
        lines += [f"**{task}** ([{at}/tuned/{task}/]({at}/tuned/{task}/README.md), {tuned['test metric'].iloc[0]} on the test "
                  "prompts, mean ± 95 % interval over the stage seeds):", "", _md(pd.DataFrame(rows)), ""]  # fmt: skip
        lines += [f"- {line}" for line in rankings(tuned)] + [""]
    return lines


def _real_section(out: Path, at: str) -> list[str]:
    where = out / "smollm2"
    paper = _read(where, "paper")
    if paper.empty:
        return []
    tuned = _read(out / "tuned" / "smollm2", "tuned")
    if not tuned.empty:
        best = tuned[tuned["setting"] == "tuned"].set_index("algo")["best"]
        paper = paper.assign(**{"tuned (searched)": paper["algo"].map(best).fillna("")})
    columns = ["algo", *[c for c in ("tuned (searched)", "gold reward", "KL to ref", "win rate vs SFT", "train s") if c in paper], "n"]
    lines = [
        "### The real model: SmolLM2-135M-Instruct",
        "",
        f"`experiment=smollm2_cpu` ([{at}/smollm2/]({at}/smollm2/README.md), with samples before and after): the policy "
        f"trained through LoRA in bf16 on `{paper['task'].iloc[0]}`, each algorithm at the learning rate its search chose "
        f"([{at}/tuned/smollm2/]({at}/tuned/smollm2/README.md)); mean ± 95 % interval over the stage seeds.",
        "",
        _md(paper[columns]),
        "",
        *_verdicts(_read(where, "pairwise")),
    ]
    precision = _read(where / "precision", "pairwise")
    if not precision.empty:
        r = precision.iloc[0]
        lines += [f"bf16 against float32 ([{at}/smollm2/precision/]({at}/smollm2/precision/README.md)): {r['a']} − {r['b']} "
                  f"= {r['diff']:+.3f} ± {r['ci95']:.3f} in final gold reward ({r['test']}, n = {r['n']}; p = {_p(r['p_value'])}).", ""]  # fmt: skip
    return lines


def headline(out: Path, at: str) -> str:
    """The section, its links relative to the README (`at`: the results directory as the README reaches it)."""
    record = json.loads((out / RELEASE).read_text())
    lines = [
        f"Every number in this section comes from one release: `{record['command']}` at commit `{record['commit'][:7]}`, "
        f"{record['runs']} runs, {record['wall_s'] / 3600:.1f} h on a 2-core CPU in {record['parts']} "
        f"part{'s' if record['parts'] != 1 else ''} ([{at}/README.md]({at}/README.md): the full commit, the library versions, every result set).",
        "",
        *_default_section(out, at),
        *_six_section(out, at),
        *_tuned_section(out, at),
        *_real_section(out, at),
    ]
    return "\n".join(lines).rstrip() + "\n"


def replace_section(readme: str, section: str) -> str:
    """`readme` with what lies between the marker lines replaced by `section`."""
    head, begin, rest = readme.partition(BEGIN + "\n")
    _, end, tail = rest.partition(END + "\n")
    if not begin or not end:
        raise ValueError(f"the README lacks the marker lines {BEGIN!r} and {END!r}, in that order")
    return head + begin + "\n" + section + "\n" + end + tail


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.results.headline", description=__doc__.splitlines()[0])
    parser.add_argument("out", help="the release's results directory (holds release.json)")
    parser.add_argument("--readme", default="README.md")
    args = parser.parse_args(argv)
    out, readme = Path(args.out), Path(args.readme)
    if not (out / RELEASE).exists():
        print(f"headline: {out} holds no {RELEASE}: not a release's results (bash scripts/release.sh writes one)", file=sys.stderr)
        return 2
    try:
        text = replace_section(readme.read_text(), headline(out, Path(os.path.relpath(out, readme.parent)).as_posix()))
    except ValueError as e:
        print(f"headline: {readme}: {e}", file=sys.stderr)
        return 2
    readme.write_text(text)
    print(f"headline: {readme} from {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
