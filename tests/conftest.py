from __future__ import annotations

import os
from pathlib import Path

if os.environ.get("PYTEST_XDIST_WORKER"):
    # one of several workers on this machine's cores: one thread each, here and in every process a test starts
    # (two workers of two threads each on two cores ran a tiny run 5x slower than one)
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = "1"

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

import bench.algos  # noqa: F401
from bench.app import CONF_DIR
from bench.config import Config, to_object
from bench.runner import run

# Small enough for CI: every stage of a tiny run takes seconds on a laptop core.
TINY = [
    "model=tiny",
    "task.n_train=500",
    "task.n_eval=64",
    "task.n_val=32",
    "sft.steps=150",
    "task.sft_target=null",  # the tasks' targets are the small preset's: the tiny model trains a fixed 150 steps
    "prefs.n_pairs=256",
    "budget.amount=2e10",
    "logger.wandb_mode=disabled",
]

# The tiny SFT model gets about 1 % of sums right, so nearly every sampled pair is two wrong answers (a tie
# that prefs.drop_ties would drop, leaving too few pairs): tiny runs on arithmetic keep the coin-flip pairs.
TINY_ARITHMETIC = ("task=arithmetic", "prefs.drop_ties=false")


def compose_config(*overrides: str):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


def tiny_config(cache_dir: Path, *overrides: str) -> tuple[Config, dict]:
    cfg = compose_config(*TINY, f"cache_dir={cache_dir}", *overrides)
    return to_object(cfg), OmegaConf.to_container(cfg, resolve=True)


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory) -> Path:
    """One stage cache for the whole session, as one sweep shares it."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture
def run_tiny(tmp_path, shared_cache):
    def _run(*overrides: str, name: str = "run", cache_dir: Path | None = None) -> tuple[dict, Path]:
        cfg, resolved = tiny_config(cache_dir or shared_cache, *overrides)
        run_dir = tmp_path / name
        return run(cfg, run_dir, resolved, sweep="tests"), run_dir

    return _run
