"""Reuse or refusal: a run directory that holds a finished run of this identity and execution is reused; one
that holds anything else of another computation is refused rather than overwritten."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from bench import rundir
from bench.config import ConfigError

log = logging.getLogger(__name__)


class RunDirTaken(ConfigError):
    """The run directory holds another configuration's run, or this one's computed by other code or on another device."""


def reusable_or_refused(run_dir: Path, identity: str, execution: dict, other_versions: bool) -> tuple[Path, dict | None, ConfigError | None]:
    """`reusable_run`'s answer as a value that process 0 can hand to the others."""
    try:
        return run_dir, reusable_run(run_dir, identity, execution, other_versions), None
    except ConfigError as e:
        return run_dir, None, e


def reusable_run(run_dir: Path, identity: str, execution: dict, other_versions: bool = False) -> dict | None:
    """The summary of a finished run of this identity and execution in `run_dir`, to reuse; None to run.

    A directory that holds another identity's run (finished, failed or killed) is refused rather
    than overwritten, and so is a finished run of this identity computed by other code, on another
    device type or under other library versions (`rundir.COMPUTATION_PACKAGES`): the same config under
    transformers 5.23 and 5.24 gave PPO 0.624 and 0.603, two computations under one identity. Refused, not
    run again beside it: a sweep directory holds one run per identity, and a reader must choose which
    versions to publish. `reuse_other_versions=true` reuses it as it is (the summary keeps its versions).
    """
    config = run_dir / rundir.CONFIG
    if config.exists() and (other := rundir.identity(json.loads(config.read_text()))) != identity:
        raise RunDirTaken(
            f"{run_dir} holds a run of another configuration (identity {other}, this one {identity}); give this "
            "run its own directory (hydra.sweep.dir=...) or delete that one to run it again"
        )
    previous = rundir.read_summary(run_dir)
    if previous is None or previous.get("status") != "finished":
        return None
    done = rundir.execution_of(previous)
    code = {k: v for k, v in execution.items() if k != "versions"}
    if {k: done.get(k) for k in code} != code:
        raise RunDirTaken(
            f"{run_dir} holds this configuration's run computed under { {k: done.get(k) for k in code} }, this one would run "
            f"under {code}; give this run its own directory (hydra.sweep.dir=...) or delete that one to run it again"
        )
    if differing := rundir.differing_versions(done["versions"], execution["versions"]):
        if not other_versions:
            raise RunDirTaken(
                f"{run_dir} holds this configuration's run computed under {differing}; run it again in its own "
                "directory (hydra.sweep.dir=...), or reuse it as it is with reuse_other_versions=true"
            )
        log.warning("reusing %s, computed under %s (reuse_other_versions=true)", run_dir, differing)
    log.info("run already finished with this identity (%s), reusing it: %s", identity, run_dir)
    return previous
