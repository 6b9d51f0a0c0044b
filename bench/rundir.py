"""The run directory's format and a run's identity: written by the runner, read by the results tool; and the
arithmetic of the summary's numbers (`at_budget`, `best_evaluation`, the tuning `objective`), pure functions of its rows.

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
changes a number; the device type, which decides `precision=auto`; and the versions of
`COMPUTATION_PACKAGES`); a finished run is reused only under the same identity *and* the
same execution (`reuse_other_versions=true` accepts other versions, and says so). The hash leaves them
out so that a sweep's directories keep their names across machines and commits.

summary.json (schema 2):
    schema, status          2; finished | diverged | failed | interrupted (Ctrl-C or SIGTERM: resumes from its checkpoint)
    algo, task, model       what ran
    seed, stage_seed        the trainer's seed; the seed of the cached stages and prompt splits
    identity, group         hashes (above); settings: the flattened result-changing config minus seeds
    execution               {result_version, device, versions}: what the config does not say about the computation
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
import math
import os
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

SUMMARY_SCHEMA = 2
RESULT_VERSION = 3  # bump with every code change that changes a number a run reports
# 2: validation prompts drawn once for every stage seed (test sets changed); best-of-N's KL estimated, not bounded
# 3: under bf16 autocast (precision=bf16, auto on CUDA) a forward after an optimiser step within a trainer step saw
#    the new weights (it ran on the stale bf16 copies before); the vocabulary head runs (and is counted) on the
#    completion's positions only, so a FLOP budget buys a little more (the logits are the same bit for bit)
CONFIG, METRICS, SUMMARY, CHECKPOINT = "config.json", "metrics.jsonl", "summary.json", "checkpoint.pt"
NON_RESULT_KEYS = ("logger", "cache_dir", "resume", "reuse_other_versions", "checkpoint_every", "eval.log_samples")
ADDED_AT_DEFAULT = {"model.gradient_checkpointing": False, "task.sft_target": None, "sft.max_steps": 2000, "sft.check_every": 10,
                    "sft.heldout_prompts": 1024, "model.lora": {"rank": 0, "alpha": 16.0, "dropout": 0.0, "target_modules": ["all-linear"]}}  # fmt: skip
"""Keys added after runs were published, left out of the identity at their default: a run from before the key
ran as its default does, so the two are one computation and keep one identity (and one directory name)."""
SEED_KEYS = ("seed", "stage_seed")
COMPUTATION_PACKAGES = ("torch", "transformers", "datasets", "peft", "rlhf-bench")
"""The installed packages whose version is part of a run's `execution`: another version is another computation."""


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


def installed_versions() -> dict[str, str]:
    """Each of `COMPUTATION_PACKAGES`' installed version ("not installed": this package run from a bare checkout)."""

    def version(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "not installed"

    return {name: version(name) for name in COMPUTATION_PACKAGES}


def execution_of(summary: dict) -> dict:
    """A summary's `execution`, for runs from before it was recorded too (result version 1 on the CPU), its versions
    those of `COMPUTATION_PACKAGES` the run recorded: before `execution` held them, its `versions` (python, torch,
    transformers, datasets, wandb: not this package's, so such a run never matches one of today)."""
    execution = summary.get("execution", {"result_version": 1, "device": "cpu"})
    recorded = execution.get("versions") or summary.get("versions", {})
    return execution | {"versions": {name: recorded[name] for name in COMPUTATION_PACKAGES if name in recorded}}


def differing_versions(theirs: dict[str, str], ours: dict[str, str]) -> str:
    """'transformers 5.24.0 (here 5.25.0), rlhf-bench unrecorded (here 0.1.0)': empty where they agree."""
    return ", ".join(f"{name} {theirs.get(name, 'unrecorded')} (here {ours[name]})" for name in ours if theirs.get(name) != ours[name])


def read_checkpoint(path: Path) -> dict:
    """A checkpoint, loaded as weights only: tensors and plain data, never code. A full unpickle of a file that
    anyone with write access to a sweep directory can plant would run whatever it holds."""
    import torch

    return torch.load(path, weights_only=True)


def read_summary(run_dir: Path) -> dict | None:
    path = run_dir / SUMMARY
    return json.loads(path.read_text()) if path.exists() else None


def read_metrics(run_dir: Path) -> list[dict]:
    path = run_dir / METRICS
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


# ---------------------------------------------------------------------------- the summary's arithmetic
def at_budget(evals: list[dict], axis: str, amount: float) -> dict[str, float]:
    """Every metric of the evaluation rows, linearly interpolated at `axis` == `amount`.

    `evals` are in the order they were taken; the last is at or past the budget, and the
    one before it (the SFT baseline at 0, at worst) before it.
    """
    after = evals[-1]
    before = next((e for e in reversed(evals[:-1]) if e[axis] <= amount), None)
    if before is None or after[axis] <= amount:
        return dict(after)
    w = (amount - before[axis]) / (after[axis] - before[axis])
    # a model first watched after the baseline (the policy) has no counter there: it stood at 0
    start = {k: before.get(k, 0.0 if k.startswith("compute/") else math.nan) for k in after}
    row = {k: start[k] + w * (v - start[k]) for k, v in after.items() if isinstance(v, (int, float))}
    return row | {axis: amount, "compute/budget_fraction": 1.0}


def best_evaluation(evals: list[dict]) -> dict[str, float]:
    """The best gold reward (and accuracy) any evaluation reached, and the FLOPs it was reached at."""
    out = {}
    for metric in ("eval/gold_reward", "eval/accuracy"):
        if metric in evals[-1]:
            best = max(evals, key=lambda e: e[metric])
            out |= {metric: best[metric], f"{metric}@compute/flops": best["compute/flops"]}
    return out


def objective_metric(task) -> str:
    """What tuning maximises: validation accuracy where the task has an exact check, else validation gold reward."""
    return "val/accuracy" if task.has_checker else "val/gold_reward"


def objective(summary: dict) -> float:
    """The tuning objective of a run: its validation score at the budget; NaN (a failed trial) if it did not finish."""
    if summary.get("status") != "finished":
        return math.nan
    return float(summary["final"].get(summary["objective"], math.nan))
