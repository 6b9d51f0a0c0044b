"""scripts/release.sh end to end on the tiny preset at a tiny budget: every result set the README links, all
from one commit, the comparisons at the settings the protocol tuned, and a second invocation that reuses every run."""

import json
import os
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from omegaconf import OmegaConf

from bench.algos.grpo import GRPOConfig
from bench.results import load_summaries
from bench.results.groups import distinguishing_keys
from bench.results.release import rebuilt_stages, same_code_as
from tests.conftest import TINY

ROOT = Path(__file__).resolve().parent.parent


def _release(tmp_path: Path, cache: Path) -> subprocess.CompletedProcess:
    readme = tmp_path / "README.md"  # the headline goes into a copy of the project's README, never the checkout's
    if not readme.exists():
        readme.write_text((ROOT / "README.md").read_text())
    env = os.environ | {
        "RELEASE_README": str(readme),
        "RELEASE_RUNS": str(tmp_path / "runs"), "RELEASE_OUT": str(tmp_path / "results"), "RELEASE_ALLOW_DIRTY": "1",
        "RELEASE_CONF": str(tmp_path / "conf"),
        "RELEASE_TUNE": "tune.trials=1 tune.seeds=1 tune.stage_seeds=[0] tune.algos=[grpo]", "RELEASE_SEEDS": "stage_seed=0 seed=0",
        # the real-model part's steps at the tiny size: its search, final run and best-of-N
        "RELEASE_REAL": "task=sentiment", "RELEASE_REAL_STAGE_SEEDS": "0", "RELEASE_TUNE_REAL": "tune.trials=1 tune.seeds=1 tune.defaults=false tune.algos=[dpo]",
        "RELEASE_REAL_PRECISION_ALGO": "dpo",
    }  # fmt: skip
    # the tiny model's 150 SFT steps answer no sum right: every arithmetic pair would be a tie, and dropped
    overrides = [o for o in TINY if not o.startswith("logger.")] + ["prefs.drop_ties=false", f"cache_dir={cache}"]
    return subprocess.run(["bash", str(ROOT / "scripts" / "release.sh"), *overrides], env=env, capture_output=True, text=True, timeout=900)


def test_release_writes_every_result_set_at_one_commit_and_reuses_its_runs(tmp_path):
    first = _release(tmp_path, tmp_path / "cache")
    assert first.returncode == 0, first.stderr[-3000:]
    results = tmp_path / "results"
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    readme = (results / "README.md").read_text()
    assert f"at commit `{head}`" in readme and "in 1 part " in readme
    for name in ("default", "power", "six", "tuned/sentiment", "tuned/arithmetic", "smollm2", "smollm2/precision", "tuned/smollm2"):
        assert f"]({name}/README.md)" in readme, name
        assert (results / name / "README.md").exists() and f"`{head}`" in (results / name / "README.md").read_text(), name
    assert (results / "default" / "aggregate.csv").exists()  # two tasks: the aggregate across them
    headline = (tmp_path / "README.md").read_text()
    assert f"at commit `{head}`" in headline and "(results/default/README.md)" in headline and "nan" not in headline
    for section in ("Which wins where", "Six algorithms", "Tuned against untuned", "The real model", "bf16 against float32"):
        assert section in headline, section
    # the float32 rerun reads the tuned file where the final run took the search's values: only precision differs
    precision = load_summaries([str(tmp_path / "runs" / p) for p in ("tune/smollm2/final/dpo", "smollm2_fp32")]).summaries
    assert distinguishing_keys(precision) == ["precision"]
    assert sorted(s["precision"] for s in precision["settings"]) == ["auto", "fp32"]
    assert precision["stage_seed"].tolist() == [0, 0] and precision["seed"].tolist() == [1, 1]
    # the default comparison runs grpo at the settings the protocol tuned, the others at their defaults
    for task in ("sentiment", "arithmetic"):
        tuned = OmegaConf.load(tmp_path / "conf" / "tuned" / "tiny" / task / "grpo.yaml")
        (grpo,) = [json.loads(p.read_text()) for p in (tmp_path / "runs" / "default").glob(f"grpo_{task}_*/config.json")]
        assert grpo["algo"]["lr"] == pytest.approx(tuned.lr) and grpo["algo"]["lr"] != GRPOConfig.lr
    summaries = [json.loads(p.read_text()) for p in (tmp_path / "runs").rglob("summary.json")]
    assert {s["git_commit"] for s in summaries} == {head} and all(s["status"] == "finished" for s in summaries)
    written = {p: p.stat().st_mtime_ns for p in (tmp_path / "runs").rglob("summary.json")}

    second = _release(tmp_path, tmp_path / "cache")
    assert second.returncode == 0, second.stderr[-3000:]
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "runs").rglob("summary.json")} == written  # every run reused
    assert "in 2 parts " in (results / "README.md").read_text()


def test_runs_of_one_stage_seed_that_read_other_stage_contents_fail_the_release(tmp_path):
    """A part rebuilds its stages (the cache is not committed): where a rebuild gave other weights, the runs of
    that stage seed are no longer paired, and the release says which stage."""
    rows = []
    for name, content in (("a", "c1"), ("b", "c1"), ("c", "c2")):
        (tmp_path / name).mkdir()
        stages = {"sft": {"hash": "k", "content": content}, "reward_model": {"hash": "r", "content": "same"}}
        (tmp_path / name / "summary.json").write_text(json.dumps({"stages": stages}))
        rows.append({"run_dir": str(tmp_path / name), "task": "t", "stage_seed": 0})
    assert rebuilt_stages(pd.DataFrame(rows)) == ["t stage seed 0 sft k"]
    assert rebuilt_stages(pd.DataFrame(rows[:2])) == []


def test_a_run_from_a_commit_that_changed_only_the_results_tool_is_the_release_commits(tmp_path, monkeypatch):
    """The tables are the release commit's own; what computes a run is the rest of bench/ and pyproject.toml."""
    monkeypatch.chdir(tmp_path)
    git = lambda *a: subprocess.run(["git", *a], check=True, capture_output=True, text=True).stdout.strip()  # noqa: E731
    git("init", "-q")
    commits = []
    for path, text in (("bench/runner.py", "a"), ("bench/results/tables.py", "b"), ("README.md", "c"), ("bench/runner.py", "d"), ("pyproject.toml", "e")):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text)
        git("add", "-A")
        git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", path)
        commits.append(git("rev-parse", "HEAD"))
    assert same_code_as(commits[0], commits[1]) and same_code_as(commits[0], commits[2])
    assert not same_code_as(commits[2], commits[3]) and not same_code_as(commits[3], commits[4])


def _release_with_a_stand_in_python(tmp_path: Path, python: str, machine_check: str = "") -> subprocess.CompletedProcess:
    """scripts/release.sh in a clone of this checkout (its committed conf/), with `python` a stand-in script: the
    release's gates without its runs. `scripts/machine_check.py` passes unless `machine_check` says otherwise."""
    repo = tmp_path / "repo"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(repo)], check=True)
    (repo / "scripts" / "release.sh").write_text((ROOT / "scripts" / "release.sh").read_text())  # this checkout's script
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    passes = '[ "$1" = scripts/machine_check.py ] && exit 0\n'
    (bin_dir / "python").write_text("#!/bin/bash\n" + (machine_check or passes) + python)
    (bin_dir / "python").chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELEASE_")} | {"PATH": f"{bin_dir}:{os.environ['PATH']}", "RELEASE_RUNS": str(tmp_path / "runs")}
    return subprocess.run(["bash", "scripts/release.sh"], cwd=repo, env=env, capture_output=True, text=True, timeout=60)


def test_new_tuned_settings_stop_the_release_before_the_comparisons(tmp_path):
    """Part 1 writes conf/tuned in the checkout (the published case): the release stops with exit 3 and says to
    commit them, before any comparison runs. `python` is a stand-in that only writes a tuned file, so this tests
    the script's gate, not the protocol (the test above runs that)."""
    stopped = _release_with_a_stand_in_python(tmp_path, (
        '[ "$1 $2" = "-m bench.tune" ] || { echo "ran: $*" >> ran.log; exit 0; }\n'
        'mkdir -p conf/tuned/small/sentiment && echo "lr: 1.0e-3" > conf/tuned/small/sentiment/grpo.yaml\n'
    ))  # fmt: skip
    assert stopped.returncode == 3, stopped.stderr
    assert "wrote new tuned settings" in stopped.stderr and "commit them" in stopped.stderr
    assert not (tmp_path / "repo" / "ran.log").exists()  # no comparison, no results
    assert (tmp_path / "runs" / "parts").read_text().strip() == "1"


def test_a_design_other_than_the_configs_seeds_stops_the_release_after_its_pilot(tmp_path):
    """With the tuned settings committed, the release runs the default comparison on the tuning finals' stage seeds at
    trainer seed 0 (the pilot), then scripts/power.py --check against conf/config.yaml; where it exits 3 (a stand-in
    here) the release stops before the rest of the comparisons."""
    stopped = _release_with_a_stand_in_python(tmp_path, 'echo "$*" >> ran.log\n[ "$1" = scripts/power.py ] && exit 3\nexit 0\n')
    assert stopped.returncode == 3, stopped.stderr
    ran = (tmp_path / "repo" / "ran.log").read_text().splitlines()
    assert [r.split()[1] if r.startswith("-m") else r.split()[0] for r in ran] == ["bench.tune"] * 3 + ["bench.app", "scripts/power.py"]
    runs = tmp_path / "runs"
    assert ran[3] == f"-m bench.app task=sentiment,arithmetic stage_seed=0,1,2,3,4 seed=0 hydra.sweep.dir={runs}/default"
    assert ran[4] == (f"scripts/power.py {runs}/tune/sentiment {runs}/tune/arithmetic {runs}/default --stage-seeds=0,1,2,3,4 "
                      "--config conf/config.yaml --check")  # fmt: skip


def test_a_machine_that_computes_other_bits_stops_the_release_before_its_runs_or_after_the_phase_that_showed_it(tmp_path):
    """scripts/machine_check.py (a stand-in here; tests/test_machine_check.py runs it) first rebuilds a recorded stage:
    where that exits 4 nothing runs and no part is counted. After each phase it compares the stage contents the
    runs recorded: where that exits 4 the release stops there."""
    logged = 'echo "$*" >> ran.log\nexit 0\n'
    refuses = '[ "$1" = scripts/machine_check.py ] && exit 4\n'
    before = _release_with_a_stand_in_python(tmp_path / "before", logged, machine_check=refuses)
    assert before.returncode == 4, before.stderr
    assert not (tmp_path / "before" / "repo" / "ran.log").exists() and not (tmp_path / "before" / "runs" / "parts").exists()
    after = _release_with_a_stand_in_python(tmp_path / "after", logged, machine_check=(
        'if [ "$1" = scripts/machine_check.py ]; then echo "check $*" >> ran.log; [ "$3" = --rebuild ] && exit 0; exit 4; fi\n'
    ))  # fmt: skip
    assert after.returncode == 4, after.stderr
    runs = tmp_path / "after" / "runs"
    ran = (tmp_path / "after" / "repo" / "ran.log").read_text().splitlines()
    assert ran[0] == f"check scripts/machine_check.py {runs} --rebuild" and ran[1].startswith("-m bench.tune task=sentiment ")
    assert ran[2:] == [f"check scripts/machine_check.py {runs}"]
    assert (runs / "parts").read_text().strip() == "1"
