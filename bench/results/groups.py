"""Groups: the runs of one configuration (the summary's `group`: identity minus seeds), and the
settings that tell a table's rows apart."""

from __future__ import annotations

import json

import pandas as pd

_ABSENT = "<absent>"  # a key a run's settings lack; json.dumps never yields this bare string



def _value_of(settings: dict, key: str) -> str:
    return json.dumps(settings[key], sort_keys=True, default=str) if key in settings else _ABSENT


def distinguishing_keys(runs: pd.DataFrame) -> list[str]:
    """The settings keys shown as columns: those taking more than one value among the runs of some task × algorithm.

    A key that differs only between algorithms (PPO's β against DPO's) or only between tasks
    is already told apart by the algo and task columns. A key some runs of a pair lack (a hub
    model has no hidden_size) counts as one more value. Since a group is a hash of its
    settings, these keys tell apart every two groups of one task × algorithm."""
    keys: set[str] = set()
    for _, pair in runs.drop_duplicates("run_dir").groupby(["task", "algo"], dropna=False):
        settings = list(pair["settings"])
        for key in set().union(*settings) - keys:
            if len({_value_of(s, key) for s in settings}) > 1:
                keys.add(key)
    return sorted(keys)


def _sort_key(header: dict, key: str) -> tuple:
    """Numbers in numeric order (0.05 before 0.5 before 10), then other values as text, absent last."""
    value = header.get(key, _ABSENT)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, float(value))
    return (2, "") if value is _ABSENT else (1, str(value))


def groups(runs: pd.DataFrame, keys: list[str]) -> list[tuple[dict, pd.DataFrame]]:
    """Each group's header (task, algo, and its value of each distinguishing key it has) with its runs, in a stable order."""
    out = []
    for _, of_group in runs.groupby(["task", "algo", "group"], sort=False, dropna=False):
        first = of_group.iloc[0]
        settings = first["settings"]
        out.append(({"task": first["task"], "algo": first["algo"]} | {k: settings[k] for k in keys if k in settings}, of_group))
    return sorted(out, key=lambda g: (str(g[0]["task"]), str(g[0]["algo"]), *(_sort_key(g[0], k) for k in keys)))


def label(header: dict) -> str:
    """A group's name in the pairwise table and the plots: its algorithm, then its distinguishing settings."""
    return " ".join([str(header["algo"])] + [f"{k}={v}" for k, v in header.items() if k not in ("task", "algo")])
