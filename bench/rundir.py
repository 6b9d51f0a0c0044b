"""The run directory's format and a run's identity: written by the runner, read by the results tool.

    <run dir>/
        config.json      the resolved config (every key, as Hydra composed it)
        metrics.jsonl    every logged row, one JSON object a line, appended as the run goes
        summary.json     how the run ended (schema below), written atomically, always
        checkpoint.pt    the latest checkpoint of an unfinished run (resume reads it)

A run's **identity** is a hash of its result-changing config: the resolved config minus
the keys that cannot change a number (`NON_RESULT_KEYS`: logging, paths, resuming,
checkpoint cadence, how many samples are logged), as Dora does, and the keys added since runs were
published, at their default (`ADDED_AT_DEFAULT`). Its **group** is the identity minus the seeds
(`SEED_KEYS`): runs of one group differ only in their random draws, so the results tool
averages them, and only them.

The config is not all of a computation: the code and the device are too. A summary
records its `execution` (`RESULT_VERSION`, bumped with every change of the code that
changes a number, and the device type, which decides `precision=auto`); a finished run
is reused only under the same identity *and* the same execution. The hash leaves them
out so that a sweep's directories keep their names across machines and commits.

summary.json (schema 2):
    schema, status          2; finished | diverged | failed
    algo, task, model       what ran
    seed, stage_seed        the trainer's seed; the seed of the cached stages and prompt splits
    identity, group         hashes (above); settings: the flattened result-changing config minus seeds
    execution               {result_version, device}: what the config does not say about the computation
    budget                  {unit, amount}
    final                   eval/* interpolated at exactly the budget, compute/* at the budget
    last_eval               the last evaluation as measured (after the last step, past the budget)
    overshoot               spent / budget - 1 at the last step (≥ 0)
    sft                     the SFT model's eval/* at compute 0
    memory, perf            per-model bytes and phase peaks; achieved FLOP/s and generation share
    stages                  hash and build figures of each cached stage read
    versions, git_commit, wall_s, reward_source, resumed_at_iteration, diverged, error
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Callable

SUMMARY_SCHEMA = 2
RESULT_VERSION = 1  # bump with every code change that changes a number a run reports
CONFIG, METRICS, SUMMARY, CHECKPOINT = "config.json", "metrics.jsonl", "summary.json", "checkpoint.pt"
NON_RESULT_KEYS = ("logger", "cache_dir", "resume", "checkpoint_every", "eval.log_samples")
ADDED_AT_DEFAULT = {"model.gradient_checkpointing": False}
"""Keys added after runs were published, left out of the identity at their default: a run from before the key
ran as its default does, so the two are one computation and keep one identity (and one directory name)."""
SEED_KEYS = ("seed", "stage_seed")


def result_config(resolved: dict, prefix: str = "") -> dict:
    """The resolved config minus the keys that cannot change a number (dotted paths for nested ones)."""
    out = {}
    for key, value in resolved.items():
        path = f"{prefix}{key}"
        if path in NON_RESULT_KEYS or (path in ADDED_AT_DEFAULT and value == ADDED_AT_DEFAULT[path]):
            continue
        out[key] = result_config(value, f"{prefix}{key}.") if isinstance(value, dict) else value
    return out


def _digest(config: dict) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:12]


def identity(resolved: dict) -> str:
    return _digest(result_config(resolved))


def group(resolved: dict) -> str:
    return _digest({k: v for k, v in result_config(resolved).items() if k not in SEED_KEYS})


def flatten(config: dict, prefix: str = "") -> dict[str, Any]:
    """{"algo": {"beta": 0.1}} -> {"algo.beta": 0.1}."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            out |= flatten(value, f"{prefix}{key}.")
        else:
            out[f"{prefix}{key}"] = value
    return out


def settings(resolved: dict) -> dict[str, Any]:
    """The flattened result-changing config minus the seeds: what a results table may split rows by."""
    return {k: v for k, v in flatten(result_config(resolved)).items() if k not in SEED_KEYS}


def atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    """Write to a temporary name, then rename: a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    write(tmp)
    os.replace(tmp, path)


def write_json(path: Path, value: dict) -> None:
    atomic_write(path, lambda p: p.write_text(json.dumps(value, indent=2, default=str)))


def read_summary(run_dir: Path) -> dict | None:
    path = run_dir / SUMMARY
    return json.loads(path.read_text()) if path.exists() else None


def read_metrics(run_dir: Path) -> list[dict]:
    path = run_dir / METRICS
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
