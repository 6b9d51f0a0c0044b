"""scripts/machine_check.py, the release's gate against a machine that computes other bits: a finished tiny run's SFT
stage rebuilt here matches its recorded content; a recorded content this machine does not reproduce, or two runs of
one stage seed that read other contents, exit 4."""

import importlib.util
import json
import shutil
from pathlib import Path

import yaml

from tests.conftest import TINY

spec = importlib.util.spec_from_file_location("machine_check", Path(__file__).parents[1] / "scripts" / "machine_check.py")
machine_check = importlib.util.module_from_spec(spec)
spec.loader.exec_module(machine_check)


def _recorded_sft(run_dir: Path, **changes) -> dict:
    summary = json.loads((run_dir / "summary.json").read_text())
    summary["stages"]["sft"] |= changes
    (run_dir / "summary.json").write_text(json.dumps(summary))
    return summary["stages"]["sft"]


def test_a_recorded_stage_rebuilt_here_passes_and_one_with_other_bits_stops_the_release(tmp_path, run_tiny, capsys):
    overrides = ("algo=dpo", "stage_seed=3", "seed=0")
    _, run_dir = run_tiny(*overrides, name="runs/a", cache_dir=tmp_path / "cache")
    (run_dir / ".hydra").mkdir()  # what Hydra writes for a run of the sweep; the check reads the run's own overrides
    (run_dir / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([*TINY, f"cache_dir={tmp_path / 'cache'}", *overrides]))
    runs = str(tmp_path / "runs")
    shutil.rmtree(tmp_path / "cache")  # the check rebuilds in a scratch cache of its own, never reads the run's
    assert machine_check.main([runs, "--rebuild"]) == 0
    recorded = _recorded_sft(run_dir)
    assert f"bit for bit ({recorded['content']})" in capsys.readouterr().out
    (machine,) = (tmp_path / "runs" / "machines").read_text().splitlines()  # the kind that ran the release, recorded
    assert machine.endswith(machine_check.this_machine())
    with (tmp_path / "runs" / "machines").open("a") as f:  # a later part on the same kind, and a blank line
        f.write(f"2026-01-01 {machine_check.this_machine()}\n\n")

    _recorded_sft(run_dir, content="0" * 16)  # as a machine of another kind would have built it
    assert machine_check.main([runs]) == 0  # one run: nothing disagrees among the recorded
    assert machine_check.main([runs, "--rebuild"]) == machine_check.OTHER_BITS
    refused = capsys.readouterr().err
    this_one = machine_check.this_machine()
    assert f"as content {recorded['content']}" in refused and f"({this_one}; this one: {this_one})" in refused
    assert len((tmp_path / "runs" / "machines").read_text().splitlines()) == 3  # a refused machine is not recorded

    shutil.copytree(run_dir, tmp_path / "runs" / "b")  # the same stage seed's run of another trainer seed
    other = json.loads((tmp_path / "runs" / "b" / "summary.json").read_text()) | {"seed": 1, "identity": "0" * 12}
    (tmp_path / "runs" / "b" / "summary.json").write_text(json.dumps(other))
    _recorded_sft(tmp_path / "runs" / "b", content=recorded["content"])
    assert machine_check.main([runs]) == machine_check.OTHER_BITS
    assert f"sentiment stage seed 3 sft {recorded['hash']}" in capsys.readouterr().err

    _recorded_sft(run_dir, content=recorded["content"], hash="f" * 16)  # another code or config: not comparable
    _recorded_sft(tmp_path / "runs" / "b", hash="f" * 16)
    assert machine_check.main([runs, "--rebuild"]) == 2


def test_a_release_without_finished_runs_has_nothing_to_compare_and_records_its_first_machine(tmp_path):
    assert machine_check.main([str(tmp_path / "runs")]) == 0 and not (tmp_path / "runs").exists()
    assert machine_check.main([str(tmp_path / "runs"), "--rebuild"]) == 0
    assert (tmp_path / "runs" / "machines").read_text().count(machine_check.this_machine()) == 1
