"""`rlhf-bench`: the Hydra app. One job = one run; a plain `rlhf-bench` runs the default comparison.

A job returns its tuning objective (bench/rundir.py `objective`: the validation score at the
budget, NaN for a run that did not finish), which is what Hydra's Optuna sweeper maximises
under `+tune=<algo>`."""

from __future__ import annotations

import logging
import math
import os
import signal
import sys
import tempfile
import threading
from pathlib import Path

import datasets
import hydra
import transformers
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf

import bench.algos  # noqa: F401  (registers the algorithm schemas)
import bench.tasks  # noqa: F401  (registers the task schemas)
from bench import distributed, rundir
from bench.config import ConfigError, to_object
from bench.jobs import share_machine
from bench.rundir import objective
from bench.runner import run
from bench.runner.build import preflight
from bench.runner.loop import BudgetBuysNoStep

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
def app(cfg: DictConfig) -> float:
    distributed.setup()
    share_machine()  # before preflight, which loads the gold judge: on this job's GPU
    if threading.current_thread() is threading.main_thread():  # SIGTERM (a scheduler, torchrun, kill) stops a run as Ctrl-C does
        previous = signal.signal(signal.SIGTERM, _interrupt)
        try:
            return _job(cfg)
        finally:
            signal.signal(signal.SIGTERM, previous)
    return _job(cfg)


def _job(cfg: DictConfig) -> float:
    try:
        config = to_object(cfg)
        preflight(config)
    except ConfigError as e:
        refuse(e)
    hydra_cfg = HydraConfig.get()
    multirun = hydra_cfg.mode.name == "MULTIRUN"
    sweep = Path(hydra_cfg.sweep.dir) if multirun else Path(hydra_cfg.run.dir)
    run_dir = Path(hydra_cfg.runtime.output_dir)
    try:
        summary = run(config, run_dir, OmegaConf.to_container(cfg, resolve=True), sweep=f"{sweep.parent.name}_{sweep.name}")
    except BudgetBuysNoStep as e:  # found out at the first step: a sweep's other runs go on, and its end fails it
        print(f"rlhf-bench: error: {e}", file=sys.stderr)
        if not multirun:
            sys.exit(2)
        return math.nan
    except ConfigError as e:  # a directory holding another computation's finished run
        refuse(e)
    except Exception:  # a data-parallel run failed in this process: leave, so that torchrun stops the others
        log.exception("process %d of a data-parallel run failed; stopping it", distributed.rank())
        logging.shutdown()
        os._exit(1)
    if summary["status"] == "interrupted":
        kept = "its checkpoint is kept" if summary["interrupted"]["checkpoint"] else "it had no checkpoint yet"
        again = f"the same command with hydra.sweep.dir={sweep}" if multirun else f"the same command with hydra.run.dir={run_dir}"
        print(f"rlhf-bench: interrupted ({summary['interrupted']['by']}): {run_dir}; {kept}, and {again} resumes it", file=sys.stderr)
        sys.exit(130)
    log.info("%s: %s", summary["status"], run_dir)
    if summary["status"] == "failed" and not multirun:  # a sweep goes on, and its end says how many failed (bench/callbacks.py)
        sys.exit(1)
    return objective(summary)


def refuse(error: ConfigError) -> None:
    print(f"rlhf-bench: error: {error}", file=sys.stderr)
    sys.exit(2)


def _interrupt(signum: int, frame) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def unknown_group_options(argv: list[str]) -> str | None:
    """The first `group=option` of the command line (sweeps `group=a,b` too) naming no YAML of that group, as one line.
    Hydra would answer it with a dozen lines of search paths and hints; this is checked before it composes."""
    conf = Path(CONF_DIR)
    for arg in argv:
        name, eq, value = arg.lstrip("+~").partition("=")
        if not eq or "/" in name or "." in name or not (conf / name).is_dir() or name == "experiment_algo" or "(" in value:
            continue
        known = sorted(p.stem for p in (conf / name).glob("*.yaml"))
        for option in value.split(","):
            if option not in known and not (option == "null" and name == "experiment"):
                return f"unknown {name} {option!r}; available: {', '.join(known)}"
    return None


def unwritable_output_dir(argv: list[str]) -> str | None:
    """Where Hydra will write (`hydra.sweep.dir`, `hydra.run.dir`, else under the working directory) as one line if
    nothing can be created there: Hydra would fail in its own mkdir, with two chained tracebacks."""
    if any(arg.startswith(("--help", "-h", "--hydra-help", "--cfg", "-c", "--info", "-i", "--shell-completion", "-sc")) for arg in argv):
        return None  # writes nothing
    given = [arg.partition("=") for arg in argv if arg.startswith(("hydra.sweep.dir=", "hydra.run.dir="))]
    if not any(key == "hydra.sweep.dir" for key, _, _ in given):  # a multirun's default: multirun/<date>/<time> in here
        given.append(("the working directory", "", os.getcwd()))
    for key, _, value in given:
        existing = Path(value).absolute()
        while not existing.exists():
            existing = existing.parent
        try:
            os.rmdir(tempfile.mkdtemp(dir=existing, prefix=".rlhf-bench-write-test-"))
        except OSError as e:
            where = f"{key}={value}" if key.startswith("hydra.") else f"the working directory {value} (where a sweep's multirun/ goes; set hydra.sweep.dir=...)"
            return f"{where} is not writable: nothing can be created in {existing} ({e.strerror})"
    return None


def main() -> None:
    """The console script: the one-line checks Hydra cannot make, then the app."""
    if message := unknown_group_options(sys.argv[1:]) or unwritable_output_dir(sys.argv[1:]):
        print(f"rlhf-bench: error: {message}", file=sys.stderr)
        sys.exit(2)
    before = os.environ.get("HYDRA_FULL_ERROR")  # "1": the user asked for Hydra's whole traceback
    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra raises its errors here instead of printing them
    try:
        app()
    except HydraException as e:  # a bad override or option: Hydra would print it with hints, search paths, a traceback
        if before == "1":
            raise
        print(f"rlhf-bench: error: {hydra_error(e)}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:  # outside a run (composing, preflight, between jobs): nothing to keep
        print("rlhf-bench: interrupted", file=sys.stderr)
        sys.exit(130)
    finally:
        if before is None:
            del os.environ["HYDRA_FULL_ERROR"]
        else:
            os.environ["HYDRA_FULL_ERROR"] = before


def hydra_error(error: HydraException) -> str:
    """Hydra's error and its cause in one line: "Could not override 'algo.bta': Key 'bta' not in 'DPOConfig' (To
    append to your config use +algo.bta=0.2)"."""
    lines = [line.strip().rstrip(".") for line in str(error).splitlines() if line.strip()] or [type(error).__name__]
    cause = str(error.__cause__).strip().splitlines()[0] if error.__cause__ is not None and str(error.__cause__).strip() else ""
    return (f"{lines[0]}: {cause}" if cause else lines[0]) + (f" ({'; '.join(lines[1:])})" if lines[1:] else "")


if __name__ == "__main__":
    main()
