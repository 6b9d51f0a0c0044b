"""Configs: every algo × task × model composes and validates; bad input names what is wrong."""

import itertools
import subprocess
import sys
from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from bench.algos import ALGOS
from bench.config import ConfigError, to_object
from bench.tasks import TASKS
from tests.conftest import compose_config

CONF = Path(__file__).resolve().parent.parent / "conf"
MODELS = sorted(p.stem for p in (CONF / "model").glob("*.yaml"))


def test_every_yaml_has_a_registered_implementation():
    assert sorted(p.stem for p in (CONF / "algo").glob("*.yaml")) == sorted(ALGOS)
    assert sorted(p.stem for p in (CONF / "task").glob("*.yaml")) == sorted(TASKS)


@pytest.mark.parametrize("algo", sorted(ALGOS))
@pytest.mark.parametrize("task", sorted(TASKS))
@pytest.mark.parametrize("model", MODELS)
def test_every_combination_composes_and_validates(algo, task, model):
    extra = ["model.name=some/model"] if model == "hub" else []
    extra += ["task.gold_model=some/judge"] if "gold_model" in OmegaConf.load(CONF / "task" / f"{task}.yaml") else []  # a required judge
    cfg = to_object(compose_config(f"algo={algo}", f"task={task}", f"model={model}", *extra))
    assert (cfg.algo.name, cfg.task.name, cfg.model.preset) == (algo, task, "hub" if model.startswith("smollm2") else model)


def test_every_yaml_key_has_a_comment():
    for path in CONF.rglob("*.yaml"):
        lines = path.read_text().splitlines()
        in_defaults = False
        for i, line in enumerate(lines):
            if line.startswith("defaults:"):
                in_defaults = True
            elif line and not line.startswith((" ", "-", "#")):
                in_defaults = False
            is_key = line and not line.startswith(("#", " ", "-")) and ":" in line
            if is_key and not in_defaults and not line.startswith(("hydra:", "defaults:")):
                assert lines[i - 1].lstrip().startswith("#"), f"{path.name}: key {line!r} has no comment above it"


def test_typo_in_override_names_the_key():
    with pytest.raises(ConfigCompositionException) as e:
        compose_config("algo=dpo", "algo.bta=0.2")
    assert "Key 'bta' not in 'DPOConfig'" in str(e.value.__cause__)
    assert "full_key: algo.bta" in str(e.value.__cause__)


def test_unknown_option_lists_the_choices():
    with pytest.raises(ConfigCompositionException, match="dpo"):
        compose_config("algo=dpoo")


def test_appended_unknown_key_is_rejected():
    with pytest.raises(ConfigError, match="unknown key algo.typo; algo accepts: .*beta"):
        to_object(compose_config("+algo.typo=3"))


@pytest.mark.parametrize(
    "override, message",
    [
        ("budget.amount=0", "budget.amount must be > 0, got 0"),
        ("budget.amount=-5", "budget.amount must be > 0"),
        ("budget.eval_every=1.5", r"budget.eval_every must be in \(0, 1\], got 1.5"),
        ("prefs.label_noise=0.7", r"prefs.label_noise must be in \[0, 0.5\]"),
        ("model=hub", "model=hub needs model.name"),
        ("checkpoint_every=0", r"checkpoint_every must be in \(0, 1\]"),
        ("eval.batch_size=0", "eval.batch_size must be >= 1, got 0"),
    ],
)
def test_invalid_values_fail_before_any_work(override, message):
    with pytest.raises(ConfigError, match=message):
        to_object(compose_config(override))


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bench.app", *args], capture_output=True, text=True, timeout=120)


def test_cli_shows_resolved_config_and_rejects_bad_input(tmp_path):
    shown = _cli("--cfg", "job")
    assert shown.returncode == 0 and "algo:" in shown.stdout and "budget:" in shown.stdout
    bad_algo = _cli("algo=dpoo")
    assert bad_algo.returncode == 2 and bad_algo.stderr.startswith("rlhf-bench: error: unknown algo 'dpoo'; available: best_of_n, dpo,")
    bad_key = _cli("task.nme=3")
    assert bad_key.returncode != 0 and "Key 'nme' not in 'SentimentConfig'" in bad_key.stderr
    zero = _cli("budget.amount=0", f"hydra.sweep.dir={tmp_path}")
    assert zero.returncode == 2 and "rlhf-bench: error: budget.amount must be > 0" in zero.stderr
    assert not list(tmp_path.rglob("summary.json"))  # rejected before any work


def test_an_unknown_device_is_refused_with_the_choices():
    with pytest.raises(ConfigCompositionException) as e:
        compose_config("device=gpu")
    assert "Invalid value 'gpu', expected one of [auto, cpu, cuda]" in str(e.value.__cause__)


def test_help_is_the_apps_own_and_lists_every_option_and_key():
    from dataclasses import fields

    from bench.config import Config

    shown = _cli("--help")
    assert shown.returncode == 0 and "schema" not in shown.stdout
    lines = shown.stdout.splitlines()
    appended = {"tune", "comparison"}  # groups with no default, added with +group=
    every = sorted(p.name for p in CONF.iterdir() if p.is_dir() and p.name not in ("hydra", "experiment_algo"))  # experiment_algo follows experiment
    for group in [f"+{g}" if g in appended else g for g in every]:
        start = next(i for i, line in enumerate(lines) if line.strip().startswith(group))
        block = " ".join([lines[start], *itertools.takewhile(lambda line: line.startswith(" " * 5), lines[start + 1 :])])  # its continuation lines
        group = group.lstrip("+")
        assert all(p.stem in block for p in (CONF / group).glob("*.yaml")), block
    keys = {f.name for f in fields(Config)} - {"algo", "task", "model", "budget"}
    assert all(f"{k}=" in shown.stdout or f"{k}.*" in shown.stdout for k in keys), keys


@pytest.mark.parametrize(("overrides", "message"), [
    (["algo=grpo", "algo.lr=-1"], "algo.lr=-1.0 is out of range: it must be > 0"),
    (["algo=dpo", "algo.beta=nan"], "algo.beta=nan is out of range: it must be >= 0"),
    (["algo=ppo", "algo.gamma=1.5"], "algo.gamma=1.5 is out of range: it must be in [0, 1]"),
    (["algo=ppo", "algo.critic_lr=inf"], "algo.critic_lr=inf is out of range: it must be > 0"),
    (["algo=dpo", "algo.label_smoothing=0.5"], "algo.label_smoothing=0.5 is out of range: it must be in [0, 0.5)"),
    (["algo=rloo", "algo.eps=0"], "algo.eps=0.0 is out of range: it must be > 0"),
    (["algo=best_of_n", "algo.candidates_per_step=0"], "candidates_per_step"),
    (["sft.lr=0"], "sft.lr=0.0 is out of range: it must be > 0"),
    (["rm.heldout=1"], "rm.heldout=1.0 is out of range: it must be in (0, 1)"),
    (["prefs.n_pairs=0"], "prefs.n_pairs=0 is out of range: it must be >= 1"),
])  # fmt: skip
def test_a_value_out_of_its_range_is_one_line_naming_key_value_and_range(overrides, message):
    with pytest.raises(ConfigError) as refused:
        to_object(compose_config(*overrides))
    assert message in str(refused.value) and "\n" not in str(refused.value)


def test_every_numeric_knob_of_every_algorithm_and_task_has_a_range():
    """A new knob without a rule would accept -1 and NaN again; every algorithm's and task's numeric fields are named in RANGES."""
    from dataclasses import fields

    from bench.config import RANGES

    def numeric(node) -> list[str]:
        return [f.name for f in fields(node) if isinstance(getattr(node, f.name), (int, float)) and not isinstance(getattr(node, f.name), bool)]

    for name in ALGOS:
        algo = to_object(compose_config(f"algo={name}")).algo
        assert numeric(algo) and not [k for k in numeric(algo) if k not in RANGES], (name, numeric(algo))
    for name in TASKS:
        task = to_object(compose_config(f"task={name}", "model=smollm2", "task.gold_model=some/judge")).task if name in ("hh_rlhf", "tldr", "ultrafeedback") \
            else to_object(compose_config(f"task={name}")).task
        assert not [k for k in numeric(task) if k not in RANGES], (name, numeric(task))
