"""Hydra callbacks: a multirun ends with the tables and plots of the runs it ran, and fails if one of them did."""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from bench import distributed, rundir

log = logging.getLogger("rlhf-bench")


class WriteResults(Callback):
    """After a multirun, `rlhf-bench-results <sweep dir> --out <sweep dir>/results`."""

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        from bench.results import main  # matplotlib and pandas only when a sweep ends

        if not distributed.is_main():  # a data-parallel sweep: its other processes wrote no run
            return
        sweep = Path(config.hydra.sweep.dir)
        if main([str(sweep), "--out", str(sweep / "results")]) == 0:
            log.info("tables and plots of this sweep: %s", sweep / "results")


class FailIfARunFailed(Callback):
    """After a multirun (and its tables), exit 1 if any run it ran failed, naming each one's summary (its traceback is
    there under `error`): a sweep goes on past a failed run, but its command must not look like success. Its runs are
    the summaries written since it started: a failed run of an earlier call in the same sweep directory is run again
    if this sweep holds it, and is not this sweep's otherwise. Diverged runs are a result, not a failure."""

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        self.started = time.time()

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        if not distributed.is_main():
            return
        mine = [p for p in Path(config.hydra.sweep.dir).glob(f"*/{rundir.SUMMARY}") if p.stat().st_mtime >= self.started]
        failed = sorted(p for p in mine if (rundir.read_summary(p.parent) or {}).get("status") == "failed")
        if failed:
            log.error("%d of the %d runs it ran failed; their errors: %s", len(failed), len(mine), ", ".join(map(str, failed)))
            sys.exit(1)
