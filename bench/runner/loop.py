"""The loop: step the trainer until the budget is spent, logging every step, evaluating (outside the budget) and
checkpointing on the way and at the end."""

from __future__ import annotations

import math
import time
from pathlib import Path

from bench import distributed
from bench.config import BudgetUnit, Config, ConfigError
from bench.meter import BUDGET_AXIS
from bench.runner.build import Built
from bench.runner.checkpoint import LoopState, save_checkpoint


class Diverged(RuntimeError):
    def __init__(self, metric: str, value: float, step: int):
        super().__init__(f"{metric} = {value} at step {step}")
        self.metric, self.value, self.step = metric, value, step


def train(b: Built, state: LoopState, run_dir: Path, execution: dict) -> None:
    """Step until the budget is spent; evaluate and checkpoint on the way and at the end. Whether it is spent is
    decided once a step, by all processes together: the step that ends the loop is the one evaluated last."""
    before_first = b.meter.metrics()
    last = distributed.any_process(b.meter.exhausted())
    while not last or state.iteration == 0:  # a fresh run takes its first step, if only to learn what one costs
        row = timed_step(b)
        state.iteration += 1
        b.logger.log(row | {"compute/iterations": state.iteration} | b.meter.metrics())
        raise_if_not_finite(row, state.iteration)
        done, last = b.meter.spent_fraction(), distributed.any_process(b.meter.exhausted())
        if last and state.iteration == 1 and b.meter.spent_fraction() > 1 and b.cfg.budget.unit != BudgetUnit.steps:
            raise BudgetBuysNoStep(b.cfg, before_first, b.meter.metrics())
        if state.eval_due(done) or last:
            state.evals.append(evaluate(b))
        if (state.checkpoint_due(done) or last) and distributed.is_main():  # the last one holds the final policy
            save_checkpoint(b, state, run_dir, execution)
    distributed.check_same_weights(b.trainer.policy, getattr(b.trainer, "critic", None))


class BudgetBuysNoStep(ConfigError):
    """A FLOPs or seconds budget that ends inside the first step: nothing would be compared but an interpolation
    between the SFT model and one step (a DPO run at 2e10 FLOPs on the tiny preset spent it all on its reference
    log-probs). A steps budget counts optimiser steps, and any amount >= 1 buys one."""

    def __init__(self, cfg: Config, before: dict, after: dict):
        axis = BUDGET_AXIS[cfg.budget.unit]
        setup, step = before[axis], after[axis] - before[axis]
        unit = {BudgetUnit.flops: "FLOPs", BudgetUnit.seconds: "s"}[cfg.budget.unit]
        built = f", after {setup:.3g} {unit} building it (what the trainer computes once)" if setup else ""
        super().__init__(
            f"budget.amount={cfg.budget.amount:g} buys no step of {cfg.algo.name}: one costs {step:.3g} {unit}{built}; "
            f"the smallest budget that buys one is budget.amount={1.01 * (setup + step):.3g}"
        )


def timed_step(b: Built) -> dict[str, float]:
    """One trainer step with its wall time, throughput and the share of it spent sampling."""
    start, flops, tokens = time.perf_counter(), b.meter.flops, b.meter.tokens
    with b.precision(), distributed.data_parallel():
        row = distributed.mean_over_processes(b.trainer.step())
    b.meter.sync()
    step_s = time.perf_counter() - start
    row |= b.phases.pop() | {
        "perf/step_s": step_s,
        "perf/tokens_per_s": (b.meter.tokens - tokens) / step_s,
        "perf/flops_per_s": (b.meter.flops - flops) / step_s,
    }
    if "perf/phase_s/rollout" in row:
        row["perf/generation_share"] = row["perf/phase_s/rollout"] / step_s
    return row


def raise_if_not_finite(row: dict[str, float], step: int) -> None:
    for key, value in row.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise Diverged(key, value, step)


def evaluate(b: Built) -> dict[str, float]:
    """The evaluator on the current policy, outside the budget; the row (and a table of samples) is logged and returned."""
    with b.meter.paused(), b.precision():
        row = b.evaluator.evaluate(b.trainer.policy) | b.meter.metrics()
    b.logger.log(row)
    b.logger.log_samples(b.evaluator.samples, row)
    b.progress.evaluation(row)
    return row
