"""Hydra callbacks: a multirun ends with the tables and plots of the runs it ran."""

from __future__ import annotations

import logging
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from bench import distributed

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
