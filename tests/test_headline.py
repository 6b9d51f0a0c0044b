"""The README's headline section, written from a release's result sets: its numbers are the tables', the rest of
the README is left as it was, and what is not a release, or a README without the markers, is refused untouched."""

import json
import shutil
from pathlib import Path

import pytest

from bench.results import main as results_main
from bench.results.headline import BEGIN, END, RELEASE, main
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
    return out


def test_the_headline_holds_the_release_and_its_tables_numbers_and_nothing_else_changes(release):
    out = release
    readme = release.parent / "README.md"  # beside results/, as the project's is
    readme.write_text(README)
    assert main([str(out), "--readme", str(readme)]) == 0
    text = readme.read_text()
    head, section = text.split(BEGIN)[0], text.split(BEGIN)[1].split(END)[0]
    assert head == "# title\n\nbefore\n\n" and text.endswith(f"{END}\n\nafter\n") and "old numbers" not in text
    assert "at commit `0123456`, 12 runs, 1.5 h on a 2-core CPU in 3 parts ([results/README.md](results/README.md)" in section
    assert "| ppo    | 0.510 [" in section and "| grpo   | 0.260 [" in section  # the aggregate, IQM first
    assert section.index("| ppo    | 0.510 [") < section.index("| grpo   | 0.260 [")  # best IQM first
    # toy: grpo − ppo = -0.25 · (1 - sft) per stage seed, sft 0.2, 0.3, 0.4: -0.2, -0.175, -0.15, mean -0.175,
    # 95 % interval t(0.975, 2) · 0.025 / √3 = 4.303 · 0.01443 = 0.062
    assert "| toy    | grpo − ppo | -0.175 ± 0.062 |   3 |" in section
    assert "toy: SFT gold_reward 0.200, 0.300, 0.400 on stage seeds 0, 1, 2: spread 0.200." in section
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
