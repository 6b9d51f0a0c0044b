"""Every logged row goes to `metrics.jsonl` (appended and flushed per row) and to wandb.

wandb runs offline by default (`logger.wandb_mode=online|disabled` to change), inside
the run directory, so `wandb sync <run_dir>/wandb/offline-run-*` uploads one later.
The run carries group (the sweep), job_type (the algorithm) and tags (task, model).
Every row is plotted against `compute/flops`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import wandb

from bench.config import LoggerConfig


class RunLogger:
    def __init__(self, cfg: LoggerConfig, run_dir: Path, name: str, group: str | None, job_type: str, tags: list[str], config: dict):
        self.path = run_dir / "metrics.jsonl"
        self._file = self.path.open("a")
        self.run = wandb.init(
            mode=cfg.wandb_mode.value, project=cfg.project, dir=str(run_dir), name=name,
            group=group, job_type=job_type, tags=tags, config=config, reinit="create_new",
        )  # fmt: skip
        self.run.define_metric("compute/flops")
        self.run.define_metric("*", step_metric="compute/flops")

    def log(self, row: dict[str, float]) -> None:
        clean = {k: (v if math.isfinite(v) else str(v)) if isinstance(v, float) else v for k, v in row.items()}
        self._file.write(json.dumps(clean) + "\n")
        self._file.flush()
        self.run.log(row)

    def summary(self, values: dict) -> None:
        self.run.summary.update({k: v for k, v in values.items() if isinstance(v, (int, float, str))})

    def close(self, exit_code: int = 0) -> None:
        self._file.close()
        self.run.finish(exit_code=exit_code)
