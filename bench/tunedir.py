"""The tune directory's format: written by the tuning app (bench/tune.py), read by the results tool
(bench/results/tuning.py), as bench/rundir.py is for a run's directory.

    <tune dir>/
        protocol.json    the command, its `tune.*` settings and its wall time (the last complete pass)
        search/<algo>/   one Optuna sweep per algorithm (`rlhf-bench -m +tune=<algo>`): the trials
        final/<algo>/    the best trial's configuration on fresh trainer seeds and the stage seeds
        default/<algo>/  the default settings on the same seeds

A trial's configuration is its Hydra overrides (`.hydra/overrides.yaml` of its run directory) minus
the seeds and the search itself (`NOT_A_SETTING`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import OmegaConf

from bench.config import ConfigError

PROTOCOL = "protocol.json"
SEARCH, FINAL, DEFAULT = "search", "final", "default"
NOT_A_SETTING = ("seed", "stage_seed", "+tune", "hydra.", "~")
"""Override keys that are not part of a configuration: the seeds (the finals set their own), the search, and the
deletion of the tuned settings (`~tuned@algo`: every run of the protocol starts from the defaults)."""
UNTUNED = "~tuned@algo"
"""The override that leaves out the committed tuned settings (conf/tuned/<model>/<task>/<algo>.yaml)."""


@dataclass
class TuneConfig:
    trials: int = 12
    """N: Optuna trials per algorithm, each a full-budget run (the same N for every algorithm). 12 is the least
    the verdicts issue accepts; the tuning table's best-so-far plot says whether the search levelled off."""
    seeds: int = 2
    """K: fresh trainer seeds (1..K) of the final and default runs."""
    stage_seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    """Stage seeds of the final and default runs (the default comparison's)."""
    search_stage_seed: int = 1000
    """The stage seed the search runs on: none of the final runs', nor any comparison's (a configuration chosen
    on one SFT model, reward model and prompt split would be tested on the same ones; the default comparison
    takes stage seeds from 0 up)."""
    algos: list[str] = field(default_factory=lambda: ["ppo", "grpo", "dpo"])
    dir: str | None = None
    """The tune directory; unset: multirun/tune/<task>_<date>_<time>."""
    defaults: bool = True
    """Also run the default settings on the final seeds (the `default` rows)."""
    conf_dir: str | None = None
    """Write each algorithm's best configuration to <conf_dir>/tuned/<model>/<task>/<algo>.yaml: with the
    checkout's `conf`, what a plain `rlhf-bench` then runs for that model and task (commit it; its header names
    the commit it was tuned at). Unset: write nothing."""

    def __post_init__(self) -> None:
        if self.trials < 1 or self.seeds < 1 or not self.stage_seeds or not self.algos:
            raise ConfigError("tune.trials and tune.seeds must be >= 1, tune.stage_seeds and tune.algos non-empty")
        if self.search_stage_seed in self.stage_seeds:
            raise ConfigError(f"tune.search_stage_seed {self.search_stage_seed} is one of tune.stage_seeds: the final runs must not share the search's stages")
        unknown = set(self.algos) - {p.stem for p in (Path(__file__).resolve().parent / "conf" / "tune").glob("*.yaml")}
        if unknown:
            raise ConfigError(f"tune.algos: no search space (conf/tune/<algo>.yaml) for {', '.join(sorted(unknown))}")

    @property
    def final_seeds(self) -> str:
        """The trainer seeds of the final and default runs, as a Hydra sweep value."""
        return ",".join(str(s) for s in range(1, self.seeds + 1))


def is_tune_dir(path: str | Path) -> bool:
    return (Path(path) / SEARCH).is_dir()


def is_search_dir(path: str | Path) -> bool:
    """An Optuna sweep (`rlhf-bench -m +tune=<algo>`): Hydra's Optuna sweeper leaves this file in it."""
    return (Path(path) / "optimization_results.yaml").exists()


def searches(tune_dir: str | Path) -> list[Path]:
    """The search directories of a tune directory, one per algorithm, by name."""
    return sorted(p for p in (Path(tune_dir) / SEARCH).glob("*") if p.is_dir())


def write_protocol(tune_dir: Path, command: str, cfg: TuneConfig, wall_s: float) -> None:
    record = {"command": command, "tune": OmegaConf.to_container(OmegaConf.structured(cfg)), "wall_s": wall_s}
    (tune_dir / PROTOCOL).write_text(json.dumps(record, indent=2))


def read_protocol(tune_dir: str | Path) -> dict | None:
    path = Path(tune_dir) / PROTOCOL
    return json.loads(path.read_text()) if path.exists() else None


def overrides(run_dir: str | Path) -> list[str]:
    """The Hydra overrides a run was launched with; [] for a run without them."""
    path = Path(run_dir) / ".hydra" / "overrides.yaml"
    return list(OmegaConf.load(path)) if path.exists() else []


def trial_number(run_dir: str | Path) -> int:
    """The trial's place in its search: Hydra's job number (`.hydra/hydra.yaml`), the order Optuna asked for it."""
    return int(OmegaConf.load(Path(run_dir) / ".hydra" / "hydra.yaml").hydra.job.num)


def choice(run_dir: str | Path, group: str) -> str:
    """The option a run's config took in `group` (`model`: the preset, as `experiment=...` may have set it)."""
    return str(OmegaConf.load(Path(run_dir) / ".hydra" / "hydra.yaml").hydra.runtime.choices[group])


def configuration(run_overrides: list[str]) -> list[str]:
    """The overrides that make a trial's configuration: its seeds and the search itself left out."""
    return [o for o in run_overrides if not o.split("=", 1)[0].startswith(NOT_A_SETTING)]


def tuned_path(conf_dir: Path, model: str, task: str, algo: str) -> Path:
    """Where the tuned settings of `algo` on `task` at the `model` preset live: the `tuned` group of the app's config."""
    return conf_dir / "tuned" / model / task / f"{algo}.yaml"


def write_tuned(path: Path, params: dict[str, str], header: str) -> None:
    """The tuned settings as a config of the `tuned` group (package `algo`): the searched keys, `algo.` dropped."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"# {line}" for line in header.splitlines()] + [f"{k.removeprefix('algo.')}: {v}" for k, v in sorted(params.items())]
    path.write_text("\n".join(lines) + "\n")
