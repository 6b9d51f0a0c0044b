"""A run's checkpoint: what the loop carries (`LoopState`), written atomically every `checkpoint_every` of the
budget and at the end, read back as weights only when a killed or interrupted run is started again."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from bench import rundir
from bench.runner.build import Built

log = logging.getLogger(__name__)


@dataclass
class LoopState:
    """What the loop carries from step to step; saved in every checkpoint."""

    eval_every: float
    checkpoint_every: float
    iteration: int = 0
    next_eval: float = 0.0
    next_checkpoint: float = 0.0
    evals: list[dict] = field(default_factory=list)
    """Every evaluation row (eval/* and compute/*), the SFT baseline at compute 0 first."""

    def __post_init__(self) -> None:
        self.next_eval = self.next_eval or self.eval_every
        self.next_checkpoint = self.next_checkpoint or self.checkpoint_every

    def eval_due(self, done: float) -> bool:
        due = done >= self.next_eval
        while self.next_eval <= done:  # a step that spans several marks evaluates once
            self.next_eval += self.eval_every
        return due

    def checkpoint_due(self, done: float) -> bool:
        due = done >= self.next_checkpoint
        while self.next_checkpoint <= done:
            self.next_checkpoint += self.checkpoint_every
        return due


def save_checkpoint(b: Built, state: LoopState, run_dir: Path, execution: dict) -> None:
    checkpoint = {
        "execution": execution,
        "trainer": b.trainer.state_dict(),
        "meter": b.meter.state_dict(),
        "phases": b.phases.state_dict(),
        "runner": {"loop": state.__dict__ | {"evals": list(state.evals)}, "logged": b.logger.logged(), "wandb_id": b.logger.run_id},
        "rng": {"torch": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []},
    }
    with b.meter.paused():
        rundir.atomic_write(run_dir / rundir.CHECKPOINT, lambda p: torch.save(checkpoint, p))


def resume(run_dir: Path, execution: dict) -> dict | None:
    """The checkpoint of a run that was killed (a checkpoint, no summary) or interrupted; `reusable_run` has checked
    its identity. A checkpoint that does not load as weights only (corrupt, or planted: a pickle runs code) is
    moved aside, named in one line, and the run starts over; so does one written under another execution."""
    path = run_dir / rundir.CHECKPOINT
    previous = rundir.read_summary(run_dir)
    if not path.exists() or (previous is not None and previous.get("status") != "interrupted"):
        return None
    try:
        checkpoint = rundir.read_checkpoint(path)
    except Exception as e:  # torch raises UnpicklingError, RuntimeError or EOFError, by what is wrong with the file
        aside = path.with_name(f"{path.name}.unreadable-{int(time.time())}")
        os.replace(path, aside)
        log.warning("%s does not load as a weights-only checkpoint (%s): moved to %s, starting the run over", path,
                    str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__, aside)  # fmt: skip
        return None
    if checkpoint.get("execution") != execution:
        log.warning("%s was written under %s, this run is %s: starting the run over", path, checkpoint.get("execution"), execution)
        return None
    return checkpoint


def restore(built: Built, checkpoint: dict, summary: dict) -> LoopState:
    built.trainer.load_state_dict(checkpoint["trainer"])
    built.meter.load_state_dict(checkpoint["meter"])
    torch.set_rng_state(checkpoint["rng"]["torch"])
    if checkpoint["rng"]["cuda"]:
        torch.cuda.set_rng_state_all(checkpoint["rng"]["cuda"])
    built.phases.load_state_dict(checkpoint["phases"])
    state = LoopState(**checkpoint["runner"]["loop"])
    if state.checkpoint_every != built.cfg.checkpoint_every:  # not part of the identity: the new cadence applies
        state.checkpoint_every = built.cfg.checkpoint_every
        state.next_checkpoint = built.meter.spent_fraction() + built.cfg.checkpoint_every
    summary["resumed_at_iteration"] = state.iteration
    log.info("resuming %s from iteration %d (%.0f%% of the budget)", summary["run_dir"], state.iteration, 100 * built.meter.spent_fraction())
    return state
