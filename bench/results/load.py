"""Reading runs: run directories (or a wandb project) into tidy pandas frames.

    load_summaries(paths) one row per run (summary.json), plus what was skipped and why
    load_runs(paths)      one row per run × logged row (metrics.jsonl), the run's columns attached
    load_wandb(project)   the same two frames from wandb's public API
"""

from __future__ import annotations

import glob
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from bench import rundir

log = logging.getLogger("rlhf-bench-results")
RUN_KEYS = ["task", "algo", "model", "seed", "stage_seed", "group", "status", "run_dir"]


@dataclass
class Runs:
    """What was read: one row per run, and the directories skipped with the reason."""

    summaries: pd.DataFrame
    skipped: list[tuple[str, str]] = field(default_factory=list)


def find_run_dirs(paths: list[str]) -> list[Path]:
    """Run directories under the given paths or globs: any directory holding config.json or summary.json."""
    found: set[Path] = set()
    for pattern in paths:
        for p in map(Path, glob.glob(pattern) or [pattern]):
            if not p.exists():
                log.warning("skipping %s: no such file or directory", p)
                continue
            candidates = [p] + [c.parent for name in (rundir.CONFIG, rundir.SUMMARY, rundir.METRICS) for c in p.rglob(name)]
            found |= {c for c in candidates if (c / rundir.CONFIG).exists() or (c / rundir.SUMMARY).exists()}
    return sorted(found)


def _flatten_summary(summary: dict) -> dict:
    row = {k: summary.get(k) for k in RUN_KEYS}
    row["wall_s"] = summary.get("wall_s")
    row["task_best"] = summary.get("task_best")
    row["objective"] = summary.get("objective")
    row["compute/flops_spent"] = summary.get("last_eval", {}).get("compute/flops")  # the budget plus the last step's overshoot
    row["data/epochs"] = summary.get("data", {}).get("epochs")
    row["settings"] = summary.get("settings", {})
    for section in ("final", "memory"):
        row |= summary.get(section, {})
    row |= {f"sft/{k}": v for k, v in summary.get("sft", {}).items()}
    row |= {f"stages/sft/{k}": v for k, v in summary.get("stages", {}).get("sft", {}).items() if k in ("steps", "heldout_quality", "target")}
    row["budget"] = summary.get("budget")
    row["git_commit"] = summary.get("git_commit")
    row["versions"] = summary.get("versions", {})
    execution = rundir.execution_of(summary)  # what decides reuse (bench/rundir.py), flat: the versions beside the rest
    row["computed_under"] = json.dumps(execution.pop("versions") | execution, sort_keys=True, default=str)
    if "diverged" in summary:
        row["diverged_at"] = f"{summary['diverged']['metric']} at step {summary['diverged']['step']}"
    return row


def load_summaries(paths: list[str]) -> Runs:
    """One row per run. Two directories holding the same identity (a copied directory, a sweep read
    twice) are one computation, not two seeds: the finished one, else the newest, is kept."""
    found, skipped = [], []
    for run_dir in find_run_dirs(paths):
        try:
            summary = rundir.read_summary(run_dir)
        except json.JSONDecodeError as e:
            skipped.append((str(run_dir), f"unreadable {rundir.SUMMARY} ({e})"))
            continue
        if summary is None:
            skipped.append((str(run_dir), f"no {rundir.SUMMARY} (still running, or killed before it finished)"))
            continue
        if summary.get("schema") != rundir.SUMMARY_SCHEMA:
            skipped.append((str(run_dir), f"summary schema {summary.get('schema')!r}, this tool reads {rundir.SUMMARY_SCHEMA}"))
            continue
        found.append((run_dir, summary))
    preference = lambda item: (item[1]["status"] == "finished", (item[0] / rundir.SUMMARY).stat().st_mtime)  # noqa: E731
    kept: dict[str, tuple[Path, dict]] = {}
    for run_dir, summary in sorted(found, key=preference, reverse=True):
        if summary.get("identity") in kept:
            skipped.append((str(run_dir), f"the same identity ({summary['identity']}) as {kept[summary['identity']][0]}"))
        else:
            kept[summary.get("identity")] = (run_dir, summary)
    rows = [_flatten_summary(summary) | {"run_dir": str(run_dir)} for run_dir, summary in sorted(kept.values())]
    for run_dir, reason in skipped:
        log.warning("skipping %s: %s", run_dir, reason)
    return Runs(pd.DataFrame(rows), skipped)


def load_runs(paths: list[str]) -> pd.DataFrame:
    """Tidy frame: one row per run × logged row, with the run's task, algo, model, seeds, group, settings and status."""
    runs = load_summaries(paths).summaries
    frames = []
    for run in runs.to_dict("records"):
        frame = pd.DataFrame(rundir.read_metrics(Path(run["run_dir"])))
        for key in RUN_KEYS + ["task_best"]:
            frame[key] = run[key]
        frame["budget"] = [run["budget"]] * len(frame)
        frame["settings"] = [run["settings"]] * len(frame)  # a dict per row: a scalar dict would be read as a mapping
        frames.append(frame)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=RUN_KEYS + ["settings"])


def load_wandb(project: str, sweep: str | None = None) -> tuple[Runs, pd.DataFrame]:
    """The same two frames from a wandb project (`entity/project`), through the public API; with
    `sweep`, only the runs tagged `sweep:<sweep>`.

    run.config is the run's resolved config, so its group and settings are computed here
    exactly as the runner computes them for summary.json."""
    import wandb

    summaries, curves = [], []
    filters = {"tags": {"$in": [f"sweep:{sweep}"]}} if sweep else None
    for run in wandb.Api().runs(project, filters=filters):
        summary = {k: v for k, v in run.summary.items() if not k.startswith("_")}
        cfg = run.config
        meta = {
            "task": cfg.get("task", {}).get("name"), "algo": cfg.get("algo", {}).get("name"),
            "model": cfg.get("model", {}).get("name") or cfg.get("model", {}).get("preset"),
            "seed": cfg.get("seed"), "stage_seed": cfg.get("stage_seed"), "group": rundir.group(cfg),
            "status": summary.get("status", "failed"), "run_dir": run.path and "/".join(run.path),
        }  # fmt: skip
        settings = rundir.settings(cfg)
        summaries.append(meta | summary | {"settings": settings, "budget": cfg.get("budget")})
        history = pd.DataFrame(list(run.scan_history()))
        for key, value in meta.items():
            history[key] = value
        history["settings"] = [settings] * len(history)
        curves.append(history)
    empty = pd.DataFrame(columns=RUN_KEYS + ["settings"])
    return Runs(pd.DataFrame(summaries)), (pd.concat(curves, ignore_index=True) if curves else empty)
