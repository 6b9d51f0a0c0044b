"""Every logged row goes to `metrics.jsonl` (appended and flushed per row) and to wandb.

wandb runs offline by default, inside the run directory, so `wandb sync <run_dir>/wandb/offline-run-*`
uploads one later. Unset `logger.*` keys defer to wandb's environment variables (`WANDB_MODE`,
`WANDB_PROJECT`, `WANDB_ENTITY`), so `WANDB_MODE=online rlhf-bench` does what wandb's banner says.
The run carries:
  - group: the run's identity minus its seeds (one line per configuration in wandb's charts);
  - job_type: the algorithm; tags: task, model and `sweep:<sweep dir>`;
  - id: stored in the checkpoint, so a killed and resumed run continues the same wandb run.
Every row is plotted against `compute/flops`; the run summary holds the final metrics at the
budget, the best evaluation (`best/*`), the SFT baseline, memory and speed (means of `perf/*`). wandb's own console output is silenced: a run prints one
line per evaluation (`Progress`) instead.
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path

import wandb

from bench.config import LoggerConfig

log = logging.getLogger("rlhf-bench")
SAMPLES = "samples.jsonl"
SUMMARIES = {"train/reward": "max", "perf/step_s": "mean", "perf/tokens_per_s": "mean", "perf/generation_share": "mean"}


def wandb_settings(cfg: LoggerConfig) -> dict[str, str | None]:
    """mode, project, entity: the config where it sets them, else wandb's environment variables, else our defaults."""
    return {
        "mode": cfg.wandb_mode.value if cfg.wandb_mode is not None else os.environ.get("WANDB_MODE", "offline"),
        "project": cfg.project or os.environ.get("WANDB_PROJECT", "rlhf-bench"),
        "entity": cfg.entity or os.environ.get("WANDB_ENTITY"),
    }


def _truncate(path: Path, keep: int) -> int:
    """Keep the first `keep` lines of `path` (creating it empty); returns how many there are."""
    kept = path.read_text().splitlines(keepends=True)[:keep] if keep and path.exists() else []
    path.write_text("".join(kept))
    return len(kept)


class RunLogger:
    def __init__(
        self, cfg: LoggerConfig, run_dir: Path, name: str, group: str, job_type: str, tags: list[str], config: dict,
        keep: dict[str, int] | None = None, run_id: str | None = None,
    ):  # fmt: skip
        """`keep`: how many lines of metrics.jsonl and samples.jsonl to keep (a resumed run's, as `logged()`
        said at its checkpoint; the rest is logged again); `run_id`: the wandb run to continue (a resumed run's)."""
        keep = keep or {}
        self.path, self.samples_path = run_dir / "metrics.jsonl", run_dir / SAMPLES
        self.rows = _truncate(self.path, keep.get("rows", 0))
        self.sample_rows = _truncate(self.samples_path, keep.get("samples", 0))
        self._file = self.path.open("a")
        self.run = wandb.init(
            **wandb_settings(cfg), dir=str(run_dir), name=name, group=group, job_type=job_type, tags=tags, config=config,
            id=run_id, resume="allow" if run_id else None, reinit="create_new",
            settings=wandb.Settings(silent=True, console="off"),
        )  # fmt: skip
        self.run.define_metric("compute/flops")
        # summaries a reader wants besides the last value (eval/* final and best are set by the runner at the end)
        for metric, summary in SUMMARIES.items():
            self.run.define_metric(metric, step_metric="compute/flops", summary=summary)
        self.run.define_metric("*", step_metric="compute/flops")

    @property
    def run_id(self) -> str:
        return self.run.id

    def logged(self) -> dict[str, int]:
        """Lines written so far to metrics.jsonl and samples.jsonl: what a checkpoint keeps on resume."""
        return {"rows": self.rows, "samples": self.sample_rows}

    def log(self, row: dict[str, float]) -> None:
        clean = {k: (v if math.isfinite(v) else str(v)) if isinstance(v, float) else v for k, v in row.items()}
        self._file.write(json.dumps(clean) + "\n")
        self._file.flush()
        self.rows += 1
        self.run.log(row)

    def log_samples(self, samples: list[dict], row: dict[str, float]) -> None:
        """One evaluation's samples (prompt, completion, gold and proxy reward, log-ratio to the reference):
        appended to samples.jsonl with the compute of the evaluation `row`, and logged as a wandb table."""
        compute = {k: v for k, v in row.items() if k.startswith("compute/")}
        with self.samples_path.open("a") as f:
            for sample in samples:
                f.write(json.dumps(compute | sample) + "\n")
        self.sample_rows += len(samples)
        columns = list(samples[0]) if samples else []
        table = wandb.Table(columns=columns, data=[[s[c] for c in columns] for s in samples])
        self.run.log({"eval/samples": table, "compute/flops": compute["compute/flops"]})

    def summary(self, values: dict) -> None:
        self.run.summary.update({k: v for k, v in values.items() if isinstance(v, (int, float, str))})

    def close(self, exit_code: int = 0) -> None:
        self._file.close()
        self.run.finish(exit_code=exit_code)


class Progress:
    """One plain line per evaluation, readable in a terminal and in a sweep's log file alike."""

    def __init__(self, name: str):
        self.name = name

    def evaluation(self, row: dict[str, float]) -> None:
        done = row.get("compute/budget_fraction", 0.0)
        elapsed = row.get("compute/seconds", 0.0)
        eta = elapsed * max(1 - done, 0.0) / done if done > 0 else math.nan
        fields = [f"{100 * min(done, 1):3.0f}%"] + [
            f"{short} {row[key]:.3f}" for key, short in (("eval/gold_reward", "gold"), ("eval/accuracy", "acc"),
                                                         ("eval/proxy_reward", "proxy"), ("eval/kl_to_ref", "KL")) if key in row
        ] + [f"elapsed {elapsed:.0f}s", f"ETA {eta:.0f}s" if math.isfinite(eta) else "ETA -"]  # fmt: skip
        log.info("%s | %s", self.name, " | ".join(fields))

    def finished(self, summary: dict) -> None:
        final, sft = summary.get("final", {}), summary.get("sft", {})
        if summary["status"] != "finished":
            log.info("%s | %s", self.name, summary["status"])
            return
        gold = f"gold {sft.get('eval/gold_reward', math.nan):.3f} -> {final['eval/gold_reward']:.3f}"
        acc = f" | accuracy {sft['eval/accuracy']:.3f} -> {final['eval/accuracy']:.3f}" if "eval/accuracy" in final else ""
        log.info("%s | finished: %s%s | KL %.2f | %.0fs", self.name, gold, acc, final["eval/kl_to_ref"], summary.get("wall_s", 0))
