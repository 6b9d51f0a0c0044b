"""The runner owns the loop: build everything from the config, step the trainer while the
budget lasts, evaluate every `eval_every` of it (outside the budget), checkpoint, log,
and always leave a `summary.json` whose status says how the run ended.

    run()        reuse a finished run of the same identity, or refuse another one's directory
    build()      task, prompts, cached stages, frozen models, meter, evaluator, logger, trainer
    resume()     the state of a killed run, from its checkpoint
    train()      the loop: step, log, evaluate, checkpoint, until the budget is spent
    evaluate(), save_checkpoint(), summarise()

The final metrics are read at exactly the budget: the last step ends past it (by up to one
step), so every eval/* and compute/* value of the summary's `final` is interpolated
linearly, in the budget's unit, between the last evaluation before the budget and the one
after it. A run that spent more than another is never compared at its own end point.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import platform
import shutil
import subprocess
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import torch

from bench import distributed, rundir
from bench.algos import ALGOS, Context, Trainer, build_trainer, resolve_reward_source
from bench.cache import StageCache
from bench.config import BudgetUnit, Config, ConfigError, Device, Precision, WandbMode, check_source
from bench.evaluator import Evaluator
from bench.logger import Progress, RunLogger
from bench.meter import BUDGET_AXIS, Meter
from bench.models import ScalarHeadModel, build_tokenizer, describe, load_policy
from bench.phases import Phases
from bench.stages import prepare_stages
from bench.tasks import build_task, chat_prompts, prompt_splits

log = logging.getLogger(__name__)


class Diverged(RuntimeError):
    def __init__(self, metric: str, value: float, step: int):
        super().__init__(f"{metric} = {value} at step {step}")
        self.metric, self.value, self.step = metric, value, step


class RunDirTaken(ConfigError):
    """The run directory holds another configuration's run, or this one's computed by other code or on another device."""


def pick_device(choice: Device) -> torch.device:
    if choice == Device.auto:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice == Device.cuda and not torch.cuda.is_available():
        raise ConfigError("device=cuda but no CUDA device is visible; use device=cpu or device=auto")
    return torch.device(Device(choice).value)


def autocast(device: torch.device, precision: Precision):
    """bf16 autocast on CUDA, float32 on the CPU (bf16 matmuls are slow there), unless `precision` says."""
    bf16 = precision == Precision.bf16 or (precision == Precision.auto and device.type == "cuda")
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)


def frozen(model: torch.nn.Module) -> torch.nn.Module:
    model.eval()
    model.requires_grad_(False)
    return model


def preflight(cfg: Config) -> None:
    """The checks that need more than the schema, done before any work."""
    task = build_task(cfg.task)
    splits = prompt_splits(task, cfg.stage_seed)  # a task too small for n_train + n_eval + n_val fails here
    if cfg.algo.name not in ALGOS:
        raise ConfigError(f"unknown algorithm {cfg.algo.name!r}; available: {', '.join(sorted(ALGOS))}")
    resolve_reward_source(cfg.reward, task)
    if cfg.sft.steps == 0 and cfg.model.preset != "hub":
        raise ConfigError(f"sft.steps=0 uses the pretrained model as the SFT model, but model={cfg.model.preset} starts from random weights; use a pretrained model (model=hub)")
    if not task.vocabulary and cfg.model.preset != "hub":
        raise ConfigError(f"task {cfg.task.name} is real text: it needs a pretrained model and its tokenizer (model=hub or model=smollm2)")
    if cfg.prefs.dataset:
        check_source("prefs.dataset", cfg.prefs.dataset)
    tokenizer = build_tokenizer(cfg.model, task.vocabulary)  # a hub name that cannot be loaded fails here
    if task.chat and not getattr(tokenizer, "chat_template", None):
        raise ConfigError(f"task {cfg.task.name} writes its prompts as chat turns: it needs a pretrained model with a chat template (model=smollm2)")
    task.gold_reward(splits.test[0], "")  # a judge that cannot be loaded fails here
    pick_device(cfg.device)
    try:
        StageCache(cfg.cache_dir)
    except PermissionError as e:
        raise ConfigError(str(e)) from e


def _versions() -> dict[str, str]:
    """Every version a reader may ask for: python and wandb beside the ones that are part of the execution."""
    import wandb

    return {"python": platform.python_version(), "wandb": wandb.__version__} | rundir.installed_versions()


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5)
        return out.stdout.strip() if out.returncode == 0 else None
    except OSError:
        return None


# ---------------------------------------------------------------------------- what a run holds
@dataclass
class Built:
    """Everything one run needs, built once from the config."""

    cfg: Config
    device: torch.device
    meter: Meter
    phases: Phases
    evaluator: Evaluator
    logger: RunLogger
    progress: Progress
    trainer: Trainer
    baseline: dict[str, float]
    """The SFT model's evaluation with the meter at 0: the first point of every curve."""

    def precision(self):
        return autocast(self.device, self.cfg.precision)


@dataclass
class LoopState:
    """What the loop carries from step to step; saved in every checkpoint."""

    eval_every: float
    checkpoint_every: float
    iteration: int = 0
    next_eval: float = 0.0
    next_checkpoint: float = 0.0
    evals: list[dict] = field(default_factory=list)
    """Every evaluation row (eval/* and compute/*), the SFT baseline at compute 0 first."""

    def __post_init__(self) -> None:
        self.next_eval = self.next_eval or self.eval_every
        self.next_checkpoint = self.next_checkpoint or self.checkpoint_every

    def eval_due(self, done: float) -> bool:
        due = done >= self.next_eval
        while self.next_eval <= done:  # a step that spans several marks evaluates once
            self.next_eval += self.eval_every
        return due

    def checkpoint_due(self, done: float) -> bool:
        due = done >= self.next_checkpoint
        while self.next_checkpoint <= done:
            self.next_checkpoint += self.checkpoint_every
        return due


# ---------------------------------------------------------------------------- the run
def run(cfg: Config, run_dir: Path, resolved_config: dict, sweep: str | None = None) -> dict:
    """One run (one algorithm × one task × one seed). Returns the summary it wrote (or found).
    `sweep` names the sweep the run belongs to (a wandb tag)."""
    resolved = distributed.with_processes(json.loads(json.dumps(resolved_config, default=str)))  # plain JSON types
    identity = rundir.identity(resolved)
    execution = {"result_version": rundir.RESULT_VERSION, "device": pick_device(cfg.device).type, "versions": rundir.installed_versions()}
    # one run directory, process 0's, read by all (its checkpoint) and written by process 0 alone
    decision = _reusable_or_refused(run_dir, identity, execution, cfg.reuse_other_versions) if distributed.is_main() else None
    run_dir, previous, refused = distributed.from_main(decision)
    if refused is not None:
        raise refused
    if previous is not None:
        return previous
    checkpoint_dir = run_dir
    if not distributed.is_main():
        run_dir = Path(tempfile.mkdtemp(prefix=f"rlhf-bench-rank{distributed.rank()}-"))
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / rundir.CONFIG).write_text(json.dumps(resolved, indent=2))
    summary: dict = {
        "schema": rundir.SUMMARY_SCHEMA, "status": "failed", "algo": cfg.algo.name, "task": cfg.task.name,
        "model": describe(cfg.model), "seed": cfg.seed, "stage_seed": cfg.stage_seed, "run_dir": str(run_dir),
        "identity": identity, "group": rundir.group(resolved), "settings": rundir.settings(resolved), "execution": execution,
        "budget": {"unit": cfg.budget.unit.value, "amount": cfg.budget.amount},
        "versions": _versions(), "git_commit": _git_commit(), "threads": torch.get_num_threads(),
    }  # fmt: skip
    started, built = time.time(), None
    try:
        checkpoint = resume(checkpoint_dir, execution) if cfg.resume and distributed.world() == 1 else None
        built = build(cfg, run_dir, resolved, sweep, summary, checkpoint)
        state = LoopState(cfg.budget.eval_every, cfg.checkpoint_every)
        if checkpoint is None:
            state.evals.append(built.baseline)
            built.logger.log(built.baseline)
            built.logger.log_samples(built.evaluator.samples, built.baseline)
        else:
            state = restore(built, checkpoint, summary)
            built.meter.mark_synced()
        train(built, state, run_dir, execution)
        summary |= summarise(built, state)
    except Diverged as e:
        log.error("run diverged: %s", e)
        summary |= {"status": "diverged", "diverged": {"metric": e.metric, "value": str(e.value), "step": e.step}}
    except ConfigError as e:
        summary["error"] = str(e)
        raise
    except KeyboardInterrupt as e:  # Ctrl-C, or SIGTERM (bench/app.py raises it as an interrupt): resumable, not failed
        if distributed.world() > 1:  # torchrun's SIGTERM to the others when one process failed; such a run starts over anyway
            summary["error"] = f"interrupted ({str(e) or 'SIGINT'}) in a data-parallel run, which starts over when run again"
            raise
        summary |= {"status": "interrupted", "interrupted": {"by": str(e) or "SIGINT", "checkpoint": (checkpoint_dir / rundir.CHECKPOINT).exists()}}
    except Exception:  # a failed run must not stop the sweep; the traceback goes in its summary, one line in the log
        summary["error"] = traceback.format_exc()
        log.error("run failed: %s (traceback: %s, 'error')", summary["error"].strip().splitlines()[-1], run_dir / rundir.SUMMARY)
        if distributed.world() > 1:  # but the other processes would wait for this one in their next collective
            raise
    finally:
        summary["wall_s"] = time.time() - started
        rundir.write_json(run_dir / rundir.SUMMARY, summary)
        if built is not None:
            built.logger.summary(wandb_summary(summary))
            built.logger.close(exit_code=0 if summary["status"] == "finished" else 1)
            built.progress.finished(summary)
        if not distributed.is_main():
            shutil.rmtree(run_dir, ignore_errors=True)
    return summary


def wandb_summary(summary: dict) -> dict:
    """What a wandb run's summary shows: the final metrics at the budget, the best evaluation, the SFT
    baseline, memory and speed, and how the run ended."""
    best = {f"best/{k}": v for k, v in summary.get("best", {}).items()}
    sft = {f"sft/{k}": v for k, v in summary.get("sft", {}).items()}
    perf = {f"perf/{k}": v for k, v in summary.get("perf", {}).items()}
    return summary.get("final", {}) | best | sft | summary.get("memory", {}) | perf | {"status": summary["status"]}


def _reusable_or_refused(run_dir: Path, identity: str, execution: dict, other_versions: bool) -> tuple[Path, dict | None, ConfigError | None]:
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


def build(cfg: Config, run_dir: Path, resolved: dict, sweep: str | None, summary: dict, checkpoint: dict | None) -> Built:
    """Task, prompts, cached stages, frozen models, meter, evaluator (and the SFT baseline), logger, trainer."""
    device = pick_device(cfg.device)
    torch.manual_seed(cfg.seed)
    task = build_task(cfg.task)
    tokenizer = build_tokenizer(cfg.model, task.vocabulary)
    prompts = prompt_splits(task, cfg.stage_seed)
    if task.chat:
        prompts = chat_prompts(prompts, tokenizer)
    summary["task_best"] = task.best_gold_reward
    summary["objective"] = objective_metric(task)
    with distributed.main_first():  # transformers' save_pretrained writes nothing outside process 0: it builds, the others read
        stages = prepare_stages(cfg, task, tokenizer, prompts.train, device)
    summary["stages"] = {
        name: {"hash": m["key"], **{k: v for k, v in m["info"].items() if isinstance(v, (int, float, str))}}
        for name, m in stages.manifests.items()
    }

    # From here every forward pass is metered (evaluation runs with the meter paused).
    meter, phases = Meter(cfg.budget), Phases(device)
    reference = meter.watch(frozen(load_policy(stages.sft).to(device)), "reference")
    reward_model = meter.watch(frozen(ScalarHeadModel.from_pretrained(stages.reward_model).to(device)), "reward_model")
    # wandb: one group per configuration (what a chart should average over seeds), the sweep as a tag
    tags = [cfg.task.name, Path(describe(cfg.model)).name[:64]] + ([f"sweep:{sweep}"[:64]] if sweep else [])  # wandb caps tags at 64
    logger = RunLogger(
        cfg.logger if distributed.is_main() else dataclasses.replace(cfg.logger, wandb_mode=WandbMode.disabled), run_dir, name=run_dir.name, group=cfg.logger.group or f"{cfg.task.name}_{cfg.algo.name}_{summary['group']}",
        job_type=cfg.algo.name, tags=tags, config=resolved, keep=checkpoint["runner"]["logged"] if checkpoint else None,
        run_id=checkpoint["runner"]["wandb_id"] if checkpoint else None,
    )  # fmt: skip
    progress = Progress(f"{cfg.algo.name} {cfg.task.name} ss{cfg.stage_seed} s{cfg.seed}")
    with meter.paused(), autocast(device, cfg.precision):
        evaluator = Evaluator(cfg.eval, task, tokenizer, prompts.test, prompts.val, reference, reward_model)
    summary["sft"] = evaluator.baseline
    baseline = evaluator.baseline | meter.metrics()
    progress.evaluation(baseline)

    torch.manual_seed(cfg.seed)
    reward_source = resolve_reward_source(cfg.reward, task)
    summary["reward_source"] = reward_source.value
    ctx = Context(task, tokenizer, device, meter, phases, prompts.train, stages, reference, reward_model, reward_source, cfg.seed,
                  cfg.model.gradient_checkpointing)  # fmt: skip
    meter.start()
    with autocast(device, cfg.precision):  # what a trainer computes once (DPO's reference log-probs) in its steps' precision
        trainer = build_trainer(cfg.algo, ctx)
    meter.mark_synced()  # every process built the same trainer: its cost (DPO's reference log-probs) counts once
    if distributed.world() > 1:  # the same start, then each process its own samples
        torch.manual_seed(cfg.seed + distributed.rank() * 2**32)
    return Built(cfg, device, meter, phases, evaluator, logger, progress, trainer, baseline)


def resume(run_dir: Path, execution: dict) -> dict | None:
    """The checkpoint of a run that was killed (a checkpoint, no summary) or interrupted; `reusable_run` has checked
    its identity. A checkpoint that does not load as weights only (corrupt, or planted: a pickle runs code) is
    moved aside, named in one line, and the run starts over; so does one written under another execution."""
    path = run_dir / rundir.CHECKPOINT
    previous = rundir.read_summary(run_dir)
    if not path.exists() or (previous is not None and previous.get("status") != "interrupted"):
        return None
    try:
        checkpoint = rundir.read_checkpoint(path)
    except Exception as e:  # torch raises UnpicklingError, RuntimeError or EOFError, by what is wrong with the file
        aside = path.with_name(f"{path.name}.unreadable-{int(time.time())}")
        os.replace(path, aside)
        log.warning("%s does not load as a weights-only checkpoint (%s): moved to %s, starting the run over", path,
                    str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__, aside)  # fmt: skip
        return None
    if checkpoint.get("execution") != execution:
        log.warning("%s was written under %s, this run is %s: starting the run over", path, checkpoint.get("execution"), execution)
        return None
    return checkpoint


def restore(built: Built, checkpoint: dict, summary: dict) -> LoopState:
    built.trainer.load_state_dict(checkpoint["trainer"])
    built.meter.load_state_dict(checkpoint["meter"])
    torch.set_rng_state(checkpoint["rng"]["torch"])
    if checkpoint["rng"]["cuda"]:
        torch.cuda.set_rng_state_all(checkpoint["rng"]["cuda"])
    built.phases.load_state_dict(checkpoint["phases"])
    state = LoopState(**checkpoint["runner"]["loop"])
    if state.checkpoint_every != built.cfg.checkpoint_every:  # not part of the identity: the new cadence applies
        state.checkpoint_every = built.cfg.checkpoint_every
        state.next_checkpoint = built.meter.spent_fraction() + built.cfg.checkpoint_every
    summary["resumed_at_iteration"] = state.iteration
    log.info("resuming %s from iteration %d (%.0f%% of the budget)", summary["run_dir"], state.iteration, 100 * built.meter.spent_fraction())
    return state


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


def save_checkpoint(b: Built, state: LoopState, run_dir: Path, execution: dict) -> None:
    checkpoint = {
        "execution": execution,
        "trainer": b.trainer.state_dict(),
        "meter": b.meter.state_dict(),
        "phases": b.phases.state_dict(),
        "runner": {"loop": state.__dict__ | {"evals": list(state.evals)}, "logged": b.logger.logged(), "wandb_id": b.logger.run_id},
        "rng": {"torch": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []},
    }
    with b.meter.paused():
        rundir.atomic_write(run_dir / rundir.CHECKPOINT, lambda p: torch.save(checkpoint, p))


# ---------------------------------------------------------------------------- the summary
def at_budget(evals: list[dict], axis: str, amount: float) -> dict[str, float]:
    """Every metric of the evaluation rows, linearly interpolated at `axis` == `amount`.

    `evals` are in the order they were taken; the last is at or past the budget, and the
    one before it (the SFT baseline at 0, at worst) before it.
    """
    after = evals[-1]
    before = next((e for e in reversed(evals[:-1]) if e[axis] <= amount), None)
    if before is None or after[axis] <= amount:
        return dict(after)
    w = (amount - before[axis]) / (after[axis] - before[axis])
    # a model first watched after the baseline (the policy) has no counter there: it stood at 0
    start = {k: before.get(k, 0.0 if k.startswith("compute/") else math.nan) for k in after}
    row = {k: start[k] + w * (v - start[k]) for k, v in after.items() if isinstance(v, (int, float))}
    return row | {axis: amount, "compute/budget_fraction": 1.0}


def best_evaluation(evals: list[dict]) -> dict[str, float]:
    """The best gold reward (and accuracy) any evaluation reached, and the FLOPs it was reached at."""
    out = {}
    for metric in ("eval/gold_reward", "eval/accuracy"):
        if metric in evals[-1]:
            best = max(evals, key=lambda e: e[metric])
            out |= {metric: best[metric], f"{metric}@compute/flops": best["compute/flops"]}
    return out


def objective_metric(task) -> str:
    """What tuning maximises: validation accuracy where the task has an exact check, else validation gold reward."""
    return "val/accuracy" if task.has_checker else "val/gold_reward"


def objective(summary: dict) -> float:
    """The tuning objective of a run: its validation score at the budget; NaN (a failed trial) if it did not finish."""
    if summary.get("status") != "finished":
        return math.nan
    return float(summary["final"].get(summary["objective"], math.nan))


def summarise(b: Built, state: LoopState) -> dict:
    axis = BUDGET_AXIS[b.cfg.budget.unit]
    last = state.evals[-1]
    return {
        "status": "finished",
        "final": at_budget(state.evals, axis, b.cfg.budget.amount),
        "last_eval": last,
        "overshoot": last[axis] / b.cfg.budget.amount - 1,
        "best": best_evaluation(state.evals),
        "data": b.trainer.data(),
        "processes": distributed.world(),
        "memory": b.trainer.memory() | {f"memory/peak_bytes/{k}": float(v) for k, v in b.phases.peak.items()},
        "perf": {
            "flops_per_s": b.meter.flops / max(b.meter.seconds, 1e-9),
            "generation_share": b.phases.total_seconds.get("rollout", 0.0) / max(b.meter.seconds, 1e-9),
        },
    }
