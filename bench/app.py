"""`rlhf-bench`: the Hydra app. One job = one run; a plain `rlhf-bench` runs the default comparison.

A job returns its tuning objective (bench/runner.py `objective`: the validation score at the
budget, NaN for a run that did not finish), which is what Hydra's Optuna sweeper maximises
under `+tune=<algo>`."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import datasets
import hydra
import transformers
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

import bench.algos  # noqa: F401  (registers the algorithm schemas)
import bench.tasks  # noqa: F401  (registers the task schemas)
from bench import distributed, rundir
from bench.config import ConfigError, to_object
from bench.jobs import share_machine
from bench.runner import objective, preflight, run

# One progress bar per long stage is ours; the libraries' per-file bars are noise in a sweep log.
datasets.disable_progress_bars()
transformers.utils.logging.disable_progress_bar()

log = logging.getLogger("rlhf-bench")


def _run_identity(*, _root_: DictConfig) -> str:
    """`${run_identity:}` in the sweep's subdir: the identity of the job's config (Hydra's own node left out)."""
    job = OmegaConf.masked_copy(_root_, [k for k in _root_ if k != "hydra"])  # resolving `hydra` would recurse
    return rundir.identity(distributed.with_processes(OmegaConf.to_container(job, resolve=True)))


OmegaConf.register_new_resolver("run_identity", _run_identity, replace=True)

# bench/conf: in a checkout a link to the top-level conf/, in a wheel the configs themselves.
# An absolute path: Hydra would read a relative one as a Python module under the console script.
CONF_DIR = str(Path(__file__).resolve().parent / "conf")


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="config")
def main(cfg: DictConfig) -> float:
    distributed.setup()
    share_machine()  # before preflight, which loads the gold judge: on this job's GPU
    try:
        config = to_object(cfg)
        preflight(config)
    except ConfigError as e:
        print(f"rlhf-bench: error: {e}", file=sys.stderr)
        sys.exit(2)
    hydra_cfg = HydraConfig.get()
    sweep = Path(hydra_cfg.sweep.dir) if hydra_cfg.mode.name == "MULTIRUN" else Path(hydra_cfg.run.dir)
    try:
        summary = run(config, Path(hydra_cfg.runtime.output_dir), OmegaConf.to_container(cfg, resolve=True), sweep=f"{sweep.parent.name}_{sweep.name}")
    except ConfigError as e:  # a directory holding another configuration's finished run
        print(f"rlhf-bench: error: {e}", file=sys.stderr)
        sys.exit(2)
    except Exception:  # a data-parallel run failed in this process: leave, so that torchrun stops the others
        log.exception("process %d of a data-parallel run failed; stopping it", distributed.rank())
        logging.shutdown()
        os._exit(1)
    log.info("%s: %s", summary["status"], Path(hydra_cfg.runtime.output_dir))
    return objective(summary)


if __name__ == "__main__":
    main()
