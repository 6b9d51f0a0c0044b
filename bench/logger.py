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
    def __init__(
        self, cfg: LoggerConfig, run_dir: Path, name: str, group: str | None, job_type: str, tags: list[str], config: dict, keep_rows: int = 0
    ):
        """`keep_rows`: rows of an existing metrics.jsonl to keep (a resumed run's, up to its checkpoint)."""
        self.path = run_dir / "metrics.jsonl"
        kept = self.path.read_text().splitlines(keepends=True)[:keep_rows] if keep_rows else []
        self.path.write_text("".join(kept))
        self.rows = len(kept)
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
        self.rows += 1
        self.run.log(row)

    def summary(self, values: dict) -> None:
        self.run.summary.update({k: v for k, v in values.items() if isinstance(v, (int, float, str))})

    def close(self, exit_code: int = 0) -> None:
        self._file.close()
        self.run.finish(exit_code=exit_code)
