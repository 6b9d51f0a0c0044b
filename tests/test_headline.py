"""The README's headline section, written from a release's result sets: its numbers are the tables', the rest of
the README is left as it was, and what is not a release, or a README without the markers, is refused untouched."""

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from bench.results import main as results_main
from bench.results.headline import BEGIN, END, headline, main
from bench.results.release import DESIGN
from bench.results.release import RECORD as RELEASE
from tests.test_verdicts import _two_task_sweep

ROOT = Path(__file__).resolve().parent.parent
README = f"# title\n\nbefore\n\n{BEGIN}\n\nold numbers\n\n{END}\n\nafter\n"


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    """A release's results holding the default comparison only: ppo and grpo on two tasks (test_verdicts' sweep:
    normalised means 0.51 and 0.26)."""
    root = tmp_path_factory.mktemp("release")
    _two_task_sweep(root / "sweep")
    out = root / "results"
    assert results_main([str(root / "sweep"), "--out", str(out / "default")]) == 0
    record = {"commit": "0123456789abcdef", "runs": 12, "wall_s": 5400, "parts": 3, "command": "bash scripts/release.sh"}
    (out / RELEASE).write_text(json.dumps(record))
    (out / "power").mkdir()
    (out / "power" / DESIGN).write_text(json.dumps({"trainer seeds": 1, "stage seeds": 16, "runs": 96, "CPU h": 4.2, "difference": 0.05}))
    return out


def test_the_headline_holds_the_release_and_its_tables_numbers_and_nothing_else_changes(release):
    out = release
    readme = release.parent / "README.md"  # beside results/, as the project's is
    readme.write_text(README)
    assert main([str(out), "--readme", str(readme)]) == 0
    text = readme.read_text()
    head, section = text.split(BEGIN)[0], text.split(BEGIN)[1].split(END)[0]
    assert head == "# title\n\nbefore\n\n" and text.endswith(f"{END}\n\nafter\n") and "old numbers" not in text
    assert "at commit `0123456789abcdef`, 12 runs, 1.5 h wall in 3 parts ([results/README.md](results/README.md)" in section
    assert "| ppo    | 0.510 [" in section and "| grpo   | 0.260 [" in section  # the aggregate, IQM first
    assert section.index("| ppo    | 0.510 [") < section.index("| grpo   | 0.260 [")  # best IQM first
    # toy: grpo − ppo = -0.25 · (1 - sft) per stage seed, sft 0.2, 0.3, 0.4: -0.2, -0.175, -0.15, mean -0.175,
    # 95 % interval t(0.975, 2) · 0.025 / √3 = 4.303 · 0.01443 = 0.062
    assert "| toy    | grpo − ppo | -0.175 ± 0.062 " in section
    assert "ppo and grpo" not in section and "grpo and ppo at their tuned settings" in section  # the set's own algorithms
    assert "toy: SFT gold_reward 0.200, 0.300, 0.400 on stage seeds 0, 1, 2: spread 0.200." in section
    assert "Across the 2 tasks" in section and "nan" not in section
    assert "- The seeds: 16 stage seeds × 1 trainer seed, the design a power calculation chose" in section
    assert "a paired difference of 0.05 at 80 % power (α = 0.05) on every pair ([results/power/](results/power/README.md))." in section
    assert "### Tuned against untuned" not in section and "### The real model" not in section  # sets it does not have
    assert main([str(out), "--readme", str(readme)]) == 0 and readme.read_text() == text  # rewriting is idempotent


def test_what_is_not_a_release_or_a_readme_without_the_markers_is_refused_untouched(release, tmp_path, capsys):
    out = Path(shutil.copytree(release, tmp_path / "results"))
    readme = tmp_path / "README.md"
    readme.write_text("# title\n\nno markers\n")
    assert main([str(out), "--readme", str(readme)]) == 2
    assert readme.read_text() == "# title\n\nno markers\n" and "lacks the marker lines" in capsys.readouterr().err
    (out / RELEASE).unlink()
    readme.write_text(README)
    assert main([str(out), "--readme", str(readme)]) == 2
    assert readme.read_text() == README and "holds no release.json" in capsys.readouterr().err


@pytest.mark.parametrize("marker", [BEGIN, END])
def test_the_projects_readme_holds_each_marker_once(marker):
    assert (ROOT / "README.md").read_text().count(marker + "\n") == 1


def _csv(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(path, index=False)


def test_sets_written_by_hand_one_task_no_defaults_row_and_no_test_read_as_they_are(tmp_path):
    """One task (no aggregate), a tuned table whose algorithm lacks its default row, a p just under 0.05, and a
    precision comparison on one stage seed (no test: its reason instead); the README one folder beside results/."""
    out = tmp_path / "results"
    (out).mkdir()
    (out / RELEASE).write_text(json.dumps({"commit": "c0ffee", "runs": 3, "wall_s": 360, "parts": 1, "command": "bash scripts/release.sh"}))
    covers = "stage × trainer seeds (5 × 1)"
    _csv(out / "default" / "paper.csv", [{"task": "sentiment", "algo": a, "n": 5, "covers": covers, "gold reward": g}
                                         for a, g in (("dpo", "0.434 ± 0.048"), ("ppo", "0.636 ± 0.018"))])  # fmt: skip
    pair = {"task": "sentiment", "a": "dpo", "b": "ppo", "metric": "eval/gold_reward", "test": "paired t (shared stage seeds)",
            "n": 5, "diff": -0.202, "ci95": 0.05, "mdd": 0.067, "mdd_holm": 0.067, "p_value": 0.0496, "p_holm": 0.0496,
            "family": 1, "winner": "ppo"}  # fmt: skip
    _csv(out / "default" / "pairwise.csv", [pair])
    _csv(out / "tuned" / "sentiment" / "tuned.csv", [{"task": "sentiment", "algo": "ppo", "setting": "tuned", "trials": 12,
          "best": "beta=0.135, lr=0.000125", "val": 0.5902, "n": 5, "test": 0.6355, "test ±": 0.0184, "test metric": "eval/gold_reward", "covers": covers}])  # fmt: skip
    _csv(out / "smollm2" / "paper.csv", [{"task": "positive_sentiment", "algo": "grpo", "n": 1, "covers": "trainer seeds only (1 run)",
                                          "gold reward": "0.258"}])  # fmt: skip
    _csv(out / "smollm2" / "precision" / "pairwise.csv", [pair | {"task": "positive_sentiment", "a": "grpo precision=bf16",
          "b": "grpo precision=fp32", "test": "Welch t (runs)", "n": "1 vs 1", "diff": 0.01, "ci95": float("nan"),
          "p_value": float("nan"), "p_holm": float("nan"), "family": 0, "winner": "no verdict: fewer than 3 values a side (n = 1 vs 1)"}])  # fmt: skip
    readme = tmp_path / "docs" / "README.md"
    readme.parent.mkdir()
    readme.write_text(README)
    assert main([str(out), "--readme", str(readme)]) == 0
    section = readme.read_text().split(BEGIN)[1].split(END)[0]
    assert "([../results/README.md](../results/README.md)" in section and "(../results/default/README.md)" in section
    assert "dpo and ppo at their tuned settings (a plain `rlhf-bench`) on sentiment" in section
    assert "Across the" not in section  # one task: no aggregate, and no sentence for it
    assert "0.0496 | ppo " in section  # not 0.05: the line the verdict is drawn at
    assert "Holm's correction over the table's 1 test;" in section and "\n\n\n" not in section
    assert "on the test prompts." in section  # no arithmetic: nothing said of it
    assert "| ppo    |       12 | beta=0.135, lr=0.000125 | 0.635 ± 0.018 | stage × trainer seeds (5 × 1) |" in section
    assert "grpo precision=bf16 − grpo precision=fp32 = 0.010 in final gold reward, Welch t (runs), n = 1 vs 1; " \
           "no verdict: fewer than 3 values a side (n = 1 vs 1)." in section
    assert "nan" not in section


def test_the_projects_headline_is_its_releases_or_says_it_is_none_yet():
    """After a release the section is exactly what the release's tables give (no hand edit survives); before the
    first one, it says so in its first words."""
    text = (ROOT / "README.md").read_text()
    section = text.split(BEGIN + "\n")[1].split(END)[0]
    if (ROOT / "results" / RELEASE).exists():
        assert section == "\n" + headline(ROOT / "results", "results") + "\n"
    else:
        assert section.startswith("\n**Not yet a release.**")
