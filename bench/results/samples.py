"""What a policy writes before and after training: per group, one test prompt's completion by the SFT model (the
run's evaluation at compute 0) and by the trained policy (its last evaluation), with their gold rewards.

The evaluator samples every policy on one fixed stream and the SFT model on another (the win rate's baseline,
bench/evaluator.py), so runs of one stage seed (and precision) show the SFT model's same completion in `before`, and `after` is an
independent draw: a policy that did not move writes another sample of the SFT model's distribution."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from bench.logger import SAMPLES
from bench.results.groups import distinguishing_keys, groups, label

COLUMNS = ["task", "algo", "label", "run_dir", "prompt", "before", "before_gold", "after", "after_gold", "after_steps"]


def before_after(run_dir: str | Path) -> dict | None:
    """The first logged test prompt at compute 0 and at the run's last evaluation; None without both."""
    path = Path(run_dir) / SAMPLES
    if not path.exists():
        return None
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if not rows:
        return None
    first = rows[0]
    last_flops = max(r["compute/flops"] for r in rows)
    after = next((r for r in rows if r["compute/flops"] == last_flops and r["prompt"] == first["prompt"]), None)
    if first["compute/flops"] != 0 or after is None or last_flops == 0:
        return None
    return {"prompt": first["prompt"], "before": first["completion"], "before_gold": first["gold_reward"],
            "after": after["completion"], "after_gold": after["gold_reward"], "after_steps": after["compute/steps"]}  # fmt: skip


def samples_table(summaries: pd.DataFrame) -> pd.DataFrame:
    """One row per group, named as the other tables name it (`label`: its algorithm and distinguishing settings):
    its finished run of the lowest stage seed and seed (the same prompt for every group of a task that has that
    run's stage seed)."""
    finished = summaries[summaries["status"] == "finished"]
    rows = []
    for header, runs in groups(finished, distinguishing_keys(finished)):
        for run_dir in runs.sort_values(["stage_seed", "seed", "run_dir"])["run_dir"]:
            found = before_after(run_dir)
            if found is not None:
                rows.append({"task": header["task"], "algo": header["algo"], "label": label(header), "run_dir": run_dir} | found)
                break
    return pd.DataFrame(rows, columns=COLUMNS)


def samples_markdown(table: pd.DataFrame) -> list[str]:
    """Per task and prompt: the SFT model's completion once, then each group's after training."""
    quote = lambda text: " ".join(text.split()) or "(empty)"  # noqa: E731  (one line: a newline would break the list)
    lines = []
    # dropna=False: a sample whose gold reward is NaN (a judge that failed) is shown, not dropped with its block
    for (task, prompt, before, before_gold), rows in table.groupby(
        ["task", "prompt", "before", "before_gold"], sort=False, dropna=False
    ):
        lines += [f"- {task}, prompt `{quote(prompt)}`", f"  - the SFT model (gold {before_gold:.3f}): {quote(before)}"]
        lines += [
            f"  - **{r.label}** at step {r.after_steps} (gold {r.after_gold:.3f}): {quote(r.after)}" for r in rows.itertuples()
        ]
    return lines
