"""`python -m bench.results.headline OUT --readme README.md`: the README's headline section, written from one
release's result sets in OUT (scripts/release.sh runs it last), so that the README shows release numbers only
and none copied by hand. It reads the tables the results tool wrote there (CSV, every digit), never the runs,
and replaces what lies between the two marker lines in the README."""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
from pathlib import Path

import pandas as pd

from bench.results.release import DESIGN, RECORD, SETS, describe
from bench.results.report import _count, detectable
from bench.results.tables import _cell, bracketed, markdown, sft_spread
from bench.results.tuning import paper_tuned, rankings

BEGIN = "<!-- headline: written by `python -m bench.results.headline` from the release in results/; edits are overwritten -->"
END = "<!-- headline end -->"
SCORES = ["gold reward", "KL to ref", "win rate vs SFT", "train s"]
"""The paper table's columns the headline shows: the verdict's metric, what it cost in KL and in seconds."""


def _read(out: Path, name: str, **kwargs) -> pd.DataFrame:
    path = out / f"{name}.csv"
    # an empty table is written as a bare newline, which pandas refuses to read
    return pd.read_csv(path, **kwargs) if path.exists() and path.stat().st_size > 1 else pd.DataFrame()


def _p(p: float) -> str:
    """Three significant digits: two would round 0.0496 onto the 0.05 line the verdict is drawn at."""
    return "" if math.isnan(p) else "< 0.001" if p < 0.001 else f"{p:.3g}"


def _listed(names) -> str:
    names = [str(n) for n in names]
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def _groups(paper: pd.DataFrame, scores: list[str]) -> pd.DataFrame:
    """The paper table's group columns (task, algo and any settings that tell two groups apart), n, what the
    interval covers, then `scores`."""
    head = list(paper.columns[: paper.columns.get_loc("n")])
    return paper[head + ["n", "covers"] + [c for c in scores if c in paper]]


def _verdicts(pairwise: pd.DataFrame) -> list[str]:
    """The pairwise table as the headline shows it (a − b, its 95 % interval, Holm's p, the verdict), then per
    task the smallest difference its tests detect."""
    if pairwise.empty:
        return []
    shown = pd.DataFrame({
        "task": pairwise["task"], "a − b": pairwise["a"] + " − " + pairwise["b"],
        "difference (95 % CI)": [_cell(d, c, 3) for d, c in zip(pairwise["diff"], pairwise["ci95"])],
        "test": pairwise["test"], "n": pairwise["n"], "p (Holm)": pairwise["p_holm"].map(_p), "verdict": pairwise["winner"],
    })  # fmt: skip
    family = int(pairwise["family"].iloc[0])
    holm = (f"Holm's correction over the table's {_count(family, 'test')}; a winner where its adjusted p is below 0.05" if family
            else "no pair had the seeds for a test")  # fmt: skip
    return [f"Pairwise (n: the stage seeds a paired test shares, or each side's units for Welch's; {holm}):", "",
            markdown(shown), "", *[f"- {line}" for line in detectable(pairwise)], ""]  # fmt: skip


def _aggregate(aggregate: pd.DataFrame) -> list[str]:
    if aggregate.empty:
        return []
    aggregate = aggregate.sort_values("IQM", ascending=False)
    shown = pd.DataFrame({
        "algo": aggregate["algo"],
        "IQM [95 % CI]": [bracketed(*r) for r in aggregate[["IQM", "IQM low", "IQM high"]].itertuples(index=False)],
        "mean [95 % CI]": [bracketed(*r) for r in aggregate[["mean", "mean low", "mean high"]].itertuples(index=False)],
        "n per task": aggregate["n per task"],
    })  # fmt: skip
    return [f"Across the {int(aggregate['tasks'].iloc[0])} tasks, each run normalised by its own SFT model (0) and the "
            "task's best score (1): the interquartile mean (IQM) and the mean, with stratified bootstrap 95 % intervals "
            "over the stage seeds:", "", markdown(shown), ""]  # fmt: skip


def _design(where: Path, at: str) -> list[str]:
    design = json.loads((where / DESIGN).read_text()) if (where / DESIGN).exists() else None
    if not design:
        return []
    return [f"- The seeds: {_count(design['stage seeds'], 'stage seed')} × {_count(design['trainer seeds'], 'trainer seed')}, the "
            f"design a power calculation chose from its pilot's variances, to detect a paired difference of {design['difference']:g} "
            f"at 80 % power (α = 0.05) on every pair ([{at}/power/]({at}/power/README.md))."]  # fmt: skip


def _default_section(out: Path, at: str) -> list[str]:
    where = out / "default"
    paper = _read(where, "paper")
    if paper.empty:
        return []
    return [
        "### Which wins where: the default comparison",
        "",
        f"{_listed(sorted(paper['algo'].unique()))} at their tuned settings (a plain `rlhf-bench`) on "
        f"{_listed(sorted(paper['task'].unique()))}; mean ± 95 % interval over what `covers` says "
        f"([{at}/default/]({at}/default/README.md)). The gold reward is the hidden judge's score on the test prompts"
        + ("; on arithmetic it is the accuracy." if "arithmetic" in set(paper["task"]) else "."),
        "",
        markdown(_groups(paper, SCORES)),
        "",
        *[f"- {line}" for line in sft_spread(_read(where, "sft"))],
        *_design(out / "power", at),
        "",
        *_aggregate(_read(where, "aggregate")),
        *_verdicts(_read(where, "pairwise", dtype={"n": str})),  # "3", or "3 vs 4" for Welch's
    ]


def _six_section(out: Path, at: str) -> list[str]:
    aggregate = _read(out / "six", "aggregate")
    if aggregate.empty:
        return []
    return [
        "### Six algorithms on the same seeds",
        "",
        f"RLOO, REINFORCE++ and best-of-N beside them ([{at}/six/]({at}/six/README.md): per task, the pairwise tests "
        "and the probability of improvement of each pair).",
        "",
        *_aggregate(aggregate),
    ]


def _tuned_section(out: Path, at: str) -> list[str]:
    lines = []
    for name in [s for s in SETS if s.startswith("tuned/") and s != "tuned/smollm2"]:
        tuned = _read(out / name, "tuned")
        if tuned.empty:
            continue
        shown = paper_tuned(tuned)
        best, default = (shown[shown["setting"] == s].set_index("algo") for s in ("tuned", "default"))
        table = pd.DataFrame({"trials": best["trials"], "best (searched)": best["best"],
                              "test, tuned": best["test"], "covers, tuned": best["covers"],
                              "test, default": default["test"], "covers, default": default["covers"]}).reset_index()  # fmt: skip
        lines += [f"**{name.removeprefix('tuned/')}** ([{at}/{name}/]({at}/{name}/README.md); {tuned['test metric'].iloc[0]} "
                  "on the test prompts, mean ± 95 % interval over what `covers` says):", "", markdown(table), "",
                  *[f"- {line}" for line in rankings(tuned)], ""]  # fmt: skip
    return ["### Tuned against untuned", "", *lines] if lines else []


def _real_section(out: Path, at: str) -> list[str]:
    where = out / "smollm2"
    paper = _read(where, "paper")
    if paper.empty:
        return []
    tuned = _read(out / "tuned" / "smollm2", "tuned")
    if not tuned.empty:
        # an algorithm's searched configuration names its row only where the set holds one group of it
        best = tuned[tuned["setting"] == "tuned"].set_index("algo")["best"]
        one_group = ~paper["algo"].duplicated(keep=False)
        paper = paper.assign(**{"tuned (searched)": paper["algo"].map(best).where(one_group).fillna("")})
    lines = [
        "### The real model: SmolLM2-135M-Instruct",
        "",
        f"`experiment=smollm2_cpu` ([{at}/smollm2/]({at}/smollm2/README.md), with samples before and after): the policy "
        f"trained through LoRA in bf16 on `{paper['task'].iloc[0]}`, each algorithm at the configuration its search chose "
        f"([{at}/tuned/smollm2/]({at}/tuned/smollm2/README.md)); mean ± 95 % interval over what `covers` says.",
        "",
        markdown(_groups(paper, ["tuned (searched)", *SCORES])),
        "",
        *_verdicts(_read(where, "pairwise", dtype={"n": str})),
    ]
    precision = _read(where / "precision", "pairwise", dtype={"n": str})
    if not precision.empty:
        r = precision.iloc[0]
        verdict = f"p = {_p(r['p_value'])}" if not math.isnan(r["p_value"]) else r["winner"]
        lines += [f"bf16 against float32 ([{at}/smollm2/precision/]({at}/smollm2/precision/README.md)): {r['a']} − {r['b']} "
                  f"= {_cell(r['diff'], r['ci95'], 3)}{'' if math.isnan(r['ci95']) else ' (95 % interval)'} in final gold reward, {r['test']}, n = {r['n']}; {verdict}.", ""]  # fmt: skip
    return lines


def headline(out: Path, at: str) -> str:
    """The section, its links relative to the README (`at`: the results directory as the README reaches it)."""
    record = json.loads((out / RECORD).read_text())
    lines = [
        f"Every number in this section comes from one release: {describe(record)} ([{at}/README.md]({at}/README.md): "
        "the library versions and every result set).",
        "",
        *_default_section(out, at),
        *_six_section(out, at),
        *_tuned_section(out, at),
        *_real_section(out, at),
    ]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).rstrip() + "\n"  # a section a set lacks leaves no gap


def replace_section(readme: str, section: str) -> str:
    """`readme` with what lies between the marker lines replaced by `section`."""
    head, begin, rest = readme.partition(BEGIN + "\n")
    _, end, tail = rest.partition(END + "\n")
    if not begin or not end:
        raise ValueError(f"it lacks the marker lines {BEGIN!r} and {END!r}, in that order")
    return head + begin + "\n" + section + "\n" + end + tail


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.results.headline", description=__doc__.splitlines()[0])
    parser.add_argument("out", help="the release's results directory (holds release.json)")
    parser.add_argument("--readme", default="README.md")
    args = parser.parse_args(argv)
    out, readme = Path(args.out), Path(args.readme)
    if not (out / RECORD).exists():
        print(f"headline: {out} holds no {RECORD}: not a release's results (bash scripts/release.sh writes one)", file=sys.stderr)
        return 2
    if not readme.is_file():
        print(f"headline: no README at {readme}", file=sys.stderr)
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
