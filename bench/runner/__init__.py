"""The runner owns the loop: build everything from the config, step the trainer while the
budget lasts, evaluate every `eval_every` of it (outside the budget), checkpoint, log,
and always leave a `summary.json` whose status says how the run ended. One file per part:

    __init__.py    run(): reuse or refuse, build, resume, train, summarise; the summary it writes
    reuse.py       reusable_run(): a finished run of the same identity and execution, or a refusal
    build.py       preflight() and build(): task, prompts, cached stages, frozen models, meter, evaluator, trainer
    checkpoint.py  LoopState (what the loop carries), save_checkpoint(), resume() and restore()
    loop.py        train(): step, log, evaluate, checkpoint, until the budget is spent

The final metrics are read at exactly the budget: the last step ends past it (by up to one
step), so every eval/* and compute/* value of the summary's `final` is interpolated
linearly, in the budget's unit, between the last evaluation before the budget and the one
after it (`rundir.at_budget`). A run that spent more than another is never compared at its own end point.
"""

from __future__ import annotations

import json
import logging
import platform
import shutil
import subprocess
import tempfile
import time
import traceback
from pathlib import Path

import torch

from bench import distributed, rundir
from bench.config import Config, ConfigError
from bench.meter import BUDGET_AXIS
from bench.models import describe
from bench.runner.build import Built, build, pick_device
from bench.runner.checkpoint import LoopState, restore, resume
from bench.runner.loop import Diverged, train
from bench.runner.reuse import reusable_or_refused

log = logging.getLogger(__name__)


def run(cfg: Config, run_dir: Path, resolved_config: dict, sweep: str | None = None) -> dict:
    """One run (one algorithm × one task × one seed). Returns the summary it wrote (or found).
    `sweep` names the sweep the run belongs to (a wandb tag)."""
    resolved = distributed.with_processes(json.loads(json.dumps(resolved_config, default=str)))  # plain JSON types
    identity = rundir.identity(resolved)
    execution = {"result_version": rundir.RESULT_VERSION, "device": pick_device(cfg.device).type, "versions": rundir.installed_versions()}
    # one run directory, process 0's, read by all (its checkpoint) and written by process 0 alone
    decision = reusable_or_refused(run_dir, identity, execution, cfg.reuse_other_versions) if distributed.is_main() else None
    run_dir, previous, refused = distributed.from_main(decision)
    if refused is not None:
        raise refused
    if previous is not None:
        return previous
    checkpoint_dir = run_dir
    if not distributed.is_main():
        run_dir = Path(tempfile.mkdtemp(prefix=f"rlhf-bench-rank{distributed.rank()}-"))
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / rundir.CONFIG).write_text(json.dumps(resolved, indent=2))
    summary: dict = {
        "schema": rundir.SUMMARY_SCHEMA, "status": "failed", "algo": cfg.algo.name, "task": cfg.task.name,
        "model": describe(cfg.model), "seed": cfg.seed, "stage_seed": cfg.stage_seed, "run_dir": str(run_dir),
        "identity": identity, "group": rundir.group(resolved), "settings": rundir.settings(resolved), "execution": execution,
        "budget": {"unit": cfg.budget.unit.value, "amount": cfg.budget.amount},
        "versions": _versions(), "git_commit": _git_commit(), "threads": torch.get_num_threads(),
    }  # fmt: skip
    started, built = time.time(), None
    try:
        checkpoint = resume(checkpoint_dir, execution) if cfg.resume and distributed.world() == 1 else None
        built = build(cfg, run_dir, resolved, sweep, summary, checkpoint)
        state = LoopState(cfg.budget.eval_every, cfg.checkpoint_every)
        if checkpoint is None:
            state.evals.append(built.baseline)
            built.logger.log(built.baseline)
            built.logger.log_samples(built.evaluator.samples, built.baseline)
        else:
            state = restore(built, checkpoint, summary)
            built.meter.mark_synced()
        train(built, state, run_dir, execution)
        summary |= summarise(built, state)
    except Diverged as e:
        log.error("run diverged: %s", e)
        summary |= {"status": "diverged", "diverged": {"metric": e.metric, "value": str(e.value), "step": e.step}}
    except ConfigError as e:
        summary["error"] = str(e)
        raise
    except KeyboardInterrupt as e:  # Ctrl-C, or SIGTERM (bench/app.py raises it as an interrupt): resumable, not failed
        if distributed.world() > 1:  # torchrun's SIGTERM to the others when one process failed; such a run starts over anyway
            summary["error"] = f"interrupted ({str(e) or 'SIGINT'}) in a data-parallel run, which starts over when run again"
            raise
        summary |= {"status": "interrupted", "interrupted": {"by": str(e) or "SIGINT", "checkpoint": (checkpoint_dir / rundir.CHECKPOINT).exists()}}
    except Exception:  # a failed run must not stop the sweep; the traceback goes in its summary, one line in the log
        summary["error"] = traceback.format_exc()
        log.error("run failed: %s (traceback: %s, 'error')", summary["error"].strip().splitlines()[-1], run_dir / rundir.SUMMARY)
        if distributed.world() > 1:  # but the other processes would wait for this one in their next collective
            raise
    finally:
        summary["wall_s"] = time.time() - started
        rundir.write_json(run_dir / rundir.SUMMARY, summary)
        if built is not None:
            built.logger.summary(wandb_summary(summary))
            built.logger.close(exit_code=0 if summary["status"] == "finished" else 1)
            built.progress.finished(summary)
        if not distributed.is_main():
            shutil.rmtree(run_dir, ignore_errors=True)
    return summary


def wandb_summary(summary: dict) -> dict:
    """What a wandb run's summary shows: the final metrics at the budget, the best evaluation, the SFT
    baseline, memory and speed, and how the run ended."""
    best = {f"best/{k}": v for k, v in summary.get("best", {}).items()}
    sft = {f"sft/{k}": v for k, v in summary.get("sft", {}).items()}
    perf = {f"perf/{k}": v for k, v in summary.get("perf", {}).items()}
    return summary.get("final", {}) | best | sft | summary.get("memory", {}) | perf | {"status": summary["status"]}


def _versions() -> dict[str, str]:
    """Every version a reader may ask for: python and wandb beside the ones that are part of the execution."""
    import wandb

    return {"python": platform.python_version(), "wandb": wandb.__version__} | rundir.installed_versions()


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5)
        return out.stdout.strip() if out.returncode == 0 else None
    except OSError:
        return None


def summarise(b: Built, state: LoopState) -> dict:
    axis = BUDGET_AXIS[b.cfg.budget.unit]
    last = state.evals[-1]
    return {
        "status": "finished",
        "final": rundir.at_budget(state.evals, axis, b.cfg.budget.amount),
        "last_eval": last,
        "overshoot": last[axis] / b.cfg.budget.amount - 1,
        "best": rundir.best_evaluation(state.evals),
        "data": b.trainer.data(),
        "processes": distributed.world(),
        "memory": b.trainer.memory() | {f"memory/peak_bytes/{k}": float(v) for k, v in b.phases.peak.items()},
        "perf": {
            "flops_per_s": b.meter.flops / max(b.meter.seconds, 1e-9),
            "generation_share": b.phases.total_seconds.get("rollout", 0.0) / max(b.meter.seconds, 1e-9),
        },
    }
