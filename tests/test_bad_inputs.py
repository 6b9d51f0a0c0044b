"""The list of bad inputs in scripts/bad_inputs.sh: each is refused with its exit status and its one line on stderr,
before any work. Run in this process (the shell script starts the app once a case, 40 times the imports)."""

import sys
from pathlib import Path

import pytest
from hydra.core.global_hydra import GlobalHydra

from bench import app

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "bad_inputs.sh"


def _cases() -> list[tuple[int, str, str]]:
    text = SCRIPT.read_text()
    block = text[text.index("<<'CASES'\n") + len("<<'CASES'\n") : text.index("\nCASES\n")]
    return [(int(want), args, first) for want, args, first in (line.split("|", 2) for line in block.splitlines())]


@pytest.mark.parametrize(("want", "args", "first"), _cases(), ids=[c[1] for c in _cases()])
def test_a_bad_input_is_one_line_and_its_exit_status(want, args, first, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # the default cache and sweep directories land here, if anywhere
    # one stage seed and seed: Hydra composes every job of a sweep before the first runs (18 of the default one)
    monkeypatch.setattr(sys, "argv", ["rlhf-bench", *args.split(), "stage_seed=0", "seed=0", f"hydra.sweep.dir={tmp_path / 'sweep'}"])
    GlobalHydra.instance().clear()
    with pytest.raises(SystemExit) as ended:
        app.main()
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert (ended.value.code, lines[:1]) == (want, lines[:1]) and lines[0].startswith(first), lines
    assert len(lines) == 1, lines  # one line, no traceback, no Hydra hints
    assert not list(tmp_path.rglob("summary.json"))  # refused before any work
