"""`rlhf-bench-tune`: the equal-effort tuning protocol, every algorithm of the comparison, end to end.

    rlhf-bench-tune task=arithmetic [model=... budget.amount=...] [tune.trials=8 tune.seeds=2 ...]

For each algorithm, three plain Hydra multiruns of the `rlhf-bench` app, each of which a user
can also run alone (the tune directory's layout is bench/tunedir.py's):

    1. search   `rlhf-bench -m +tune=<algo> hydra.sweeper.n_trials=N`: Optuna over the algorithm's
                search space (conf/tune/<algo>.yaml), every trial a full-budget run on stage seed
                `tune.search_stage_seed` (1000) and trainer seed 0, scored on the validation prompts;
    2. final    the best trial's configuration on trainer seeds 1..K and `tune.stage_seeds` (0, 1, 2):
                stages and seeds the search never saw, scored on the test prompts;
    3. default  the default settings on the same seeds, the row the tuned one is compared with.

Then the results tool writes the tuned table, the tuning compute and the usual tables of the
final and default runs into `<tune dir>/results`. Every other `key=value` argument goes to every
run unchanged (the same task, model and budget for all). A search or run that is already done
in the tune directory is reused by its identity (bench/rundir.py), so a killed protocol started
again with the same command continues where it stopped.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from pathlib import Path

from omegaconf import OmegaConf

from bench import tunedir
from bench.config import ConfigError
from bench.results.cli import main as results
from bench.results.tuning import best_trial, load_trials, searched
from bench.tunedir import UNTUNED, TuneConfig

log = logging.getLogger("rlhf-bench-tune")


def check_sweeper() -> None:
    try:
        import hydra_plugins.hydra_optuna_sweeper  # noqa: F401
    except ImportError as e:
        raise ConfigError("the search runs through Hydra's Optuna sweeper: pip install 'rlhf-bench[tune]'") from e


def parse(argv: list[str]) -> tuple[TuneConfig, list[str]]:
    """`tune.*` arguments into a TuneConfig (a typo is an error that names the key); the rest are forwarded."""
    ours = [a.removeprefix("tune.") for a in argv if a.startswith("tune.")]
    forwarded = [a for a in argv if not a.startswith("tune.")]
    for a in forwarded:
        if "=" not in a or a.startswith(("-", "seed=", "stage_seed=", "algo=", "algo.", "+tune=", "hydra.sweep")):
            raise ConfigError(
                f"{a!r}: give key=value overrides for every run of every algorithm; seeds, algorithms and directories "
                "are tune.* keys, and algo.* is each search's to choose (conf/tune/<algo>.yaml)"
            )
    try:
        cfg = OmegaConf.merge(OmegaConf.structured(TuneConfig), OmegaConf.from_dotlist(ours))
        return OmegaConf.to_object(cfg), forwarded
    except ConfigError:
        raise
    except Exception as e:  # omegaconf's message names the key; the __post_init__ one is ours
        cause = e.__cause__ or e.__context__
        message = str(cause if isinstance(cause, ConfigError) else e).splitlines()[0]
        raise ConfigError(message.replace("Key '", "Key 'tune.")) from e


def rlhf_bench(args: list[str]) -> None:
    """One `rlhf-bench -m ...` multirun, in its own process (Hydra runs one app per process)."""
    command = [sys.executable, "-m", "bench.app", "-m", *args]
    log.info("%s", " ".join(command[2:]))
    status = subprocess.run(command).returncode
    if status == 1:  # the multirun ran, and some of its runs failed: a failed trial is a NaN objective, not the end
        log.warning("some runs of this multirun failed (named above); the protocol goes on: %s", " ".join(command[2:]))
    elif status != 0:  # bad input (2), interrupted (130)
        raise RuntimeError(f"rlhf-bench exited {status}: {' '.join(command[2:])}")


def run_protocol(cfg: TuneConfig, forwarded: list[str], out: Path, command: str) -> None:
    """Search, final and default runs of each algorithm; every run starts from the defaults (`UNTUNED`), never from
    settings an earlier protocol wrote."""
    seeds = cfg.final_seeds
    stage_seeds = ",".join(str(s) for s in cfg.stage_seeds)
    for algo in cfg.algos:
        search = out / tunedir.SEARCH / algo
        rlhf_bench([f"+tune={algo}", UNTUNED, f"hydra.sweeper.n_trials={cfg.trials}", f"stage_seed={cfg.search_stage_seed}", f"hydra.sweep.dir={search}", *forwarded])
        best = best_trial(load_trials(search))
        if best is None:
            log.error("%s: no trial of the search finished; no final runs (see %s)", algo, search)
        else:
            log.info("%s: best trial %s, validation %.4f", algo, best["run_dir"], best["objective_value"])
            given = {o.split("=", 1)[0] for o in forwarded}  # the sweeper rewrites values (2e9 -> 2000000000.0): match keys
            chosen = [o for o in best["configuration"] if o.split("=", 1)[0] not in given]
            rlhf_bench([f"hydra.sweep.dir={out / tunedir.FINAL / algo}", UNTUNED, f"seed={seeds}", f"stage_seed={stage_seeds}", *chosen, *forwarded])
            if cfg.conf_dir:
                trials = load_trials(search)
                path = tunedir.tuned_path(Path(cfg.conf_dir), tunedir.choice(best["run_dir"], "model"), best["task"], algo)
                header = (f"{algo} on {best['task']}, tuned at commit {best['git_commit']} by `{command}`:\n"
                          f"the best of {len(trials)} trials, {best['objective']} {best['objective_value']:.4f} ({best['run_dir']})")  # fmt: skip
                tunedir.write_tuned(path, searched(trials, best, search), header)
                log.info("%s: tuned settings written to %s", algo, path)
        if cfg.defaults:
            rlhf_bench([f"hydra.sweep.dir={out / tunedir.DEFAULT / algo}", UNTUNED, f"algo={algo}", f"seed={seeds}", f"stage_seed={stage_seeds}", *forwarded])


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    try:
        cfg, forwarded = parse(argv)
        check_sweeper()
    except ConfigError as e:
        print(f"rlhf-bench-tune: error: {e}", file=sys.stderr)
        return 2
    task = next((a.split("=", 1)[1] for a in forwarded if a.startswith("task=")), "sentiment")
    out = Path(cfg.dir or f"multirun/tune/{task}_{time.strftime('%Y-%m-%d_%H-%M-%S')}")
    started = time.time()
    command = " ".join(["rlhf-bench-tune", *argv])
    try:
        run_protocol(cfg, forwarded, out, command)
    except RuntimeError as e:
        print(f"rlhf-bench-tune: error: {e}", file=sys.stderr)
        return 1
    wall_s = time.time() - started
    tunedir.write_protocol(out, command, cfg, wall_s)
    log.info("protocol done in %.0f s: %s", wall_s, out)
    return results([str(out), "--out", str(out / "results")])


if __name__ == "__main__":
    sys.exit(main())
