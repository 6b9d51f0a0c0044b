"""The runner owns the loop: build everything from the config, step the trainer while the
budget lasts, evaluate every `eval_every` of it (outside the budget), checkpoint, log,
and always leave a `summary.json` whose status says how the run ended.

    1. task, tokenizer, prompt splits
    2. cached stages: SFT → preference data → reward model
    3. frozen reference and reward model, the meter watching every model
    4. evaluator; the SFT model is evaluated at compute 0
    5. trainer.step() until the budget is spent; evaluate, checkpoint, log on the way
    6. final evaluation, memory figures, summary
"""

from __future__ import annotations

import json
import logging
import math
import os
import platform
import subprocess
import time
import traceback
from dataclasses import asdict
from pathlib import Path

import torch

from bench.algos import ALGOS, Context, build_trainer, resolve_reward_source
from bench.cache import StageCache
from bench.config import Config, ConfigError
from bench.evaluator import Evaluator
from bench.logger import RunLogger
from bench.meter import Meter
from bench.models import ScalarHeadModel, build_tokenizer, describe, load_policy
from bench.phases import Phases, model_bytes
from bench.stages import prepare_stages
from bench.tasks import build_task, prompt_splits

log = logging.getLogger(__name__)
SUMMARY_SCHEMA = 1
CHECKPOINT = "checkpoint.pt"


class Diverged(RuntimeError):
    def __init__(self, metric: str, value: float, step: int):
        super().__init__(f"{metric} = {value} at step {step}")
        self.metric, self.value, self.step = metric, value, step


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device=cuda but no CUDA device is visible; use device=cpu or device=auto")
    return torch.device(name)


def autocast(device: torch.device):
    """bf16 autocast on CUDA; float32 on the CPU (bf16 matmuls are slow there and change the numbers)."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


def frozen(model: torch.nn.Module) -> torch.nn.Module:
    model.eval()
    model.requires_grad_(False)
    return model


def preflight(cfg: Config) -> None:
    """The checks that need more than the schema, done before any work."""
    task = build_task(cfg.task)
    prompt_splits(task, cfg.stage_seed)  # a task too small for n_train + n_eval fails here
    if cfg.algo.name not in ALGOS:
        raise ConfigError(f"unknown algorithm {cfg.algo.name!r}; available: {', '.join(sorted(ALGOS))}")
    resolve_reward_source(cfg.reward, task)
    build_tokenizer(cfg.model, task.vocabulary)  # a hub name that cannot be loaded fails here
    pick_device(cfg.device)
    try:
        StageCache(cfg.cache_dir)
    except PermissionError as e:
        raise ConfigError(str(e)) from e


def _versions() -> dict[str, str]:
    import datasets
    import transformers
    import wandb

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "datasets": datasets.__version__,
        "wandb": wandb.__version__,
    }


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5)
        return out.stdout.strip() if out.returncode == 0 else None
    except OSError:
        return None


def _atomic_write(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    write(tmp)
    os.replace(tmp, path)


def _rng_state() -> dict:
    return {"torch": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"]:
        torch.cuda.set_rng_state_all(state["cuda"])


def _resumable_checkpoint(run_dir: Path, resolved_config: dict) -> dict | None:
    """The checkpoint of a run that was killed (a checkpoint and no summary) with this same config."""
    path = run_dir / CHECKPOINT
    if not path.exists() or (run_dir / "summary.json").exists():
        return None
    checkpoint = torch.load(path, weights_only=False)
    if checkpoint["runner"]["config"] != resolved_config:
        log.warning("not resuming %s: its checkpoint was written with another config; starting over", run_dir)
        return None
    return checkpoint


def _finite_or_raise(row: dict[str, float], step: int) -> None:
    for key, value in row.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise Diverged(key, value, step)


def run(cfg: Config, run_dir: Path, resolved_config: dict, group: str | None = None) -> dict:
    """One run (one algorithm × one task × one seed). Returns the summary it wrote."""
    run_dir.mkdir(parents=True, exist_ok=True)
    summary_path = run_dir / "summary.json"
    if summary_path.exists():
        previous = json.loads(summary_path.read_text())
        if previous.get("status") == "finished":
            log.info("run already finished, skipping: %s", run_dir)
            return previous
    resolved_config = json.loads(json.dumps(resolved_config, default=str))  # plain JSON types: compared on resume
    resume = _resumable_checkpoint(run_dir, resolved_config) if cfg.resume else None
    (run_dir / "config.json").write_text(json.dumps(resolved_config, indent=2, default=str))
    started = time.time()
    summary: dict = {
        "schema": SUMMARY_SCHEMA, "status": "failed", "algo": cfg.algo.name, "task": cfg.task.name,
        "model": describe(cfg.model), "seed": cfg.seed, "stage_seed": cfg.stage_seed, "run_dir": str(run_dir),
        "budget": {"unit": cfg.budget.unit.value, "amount": cfg.budget.amount},
        "versions": _versions(), "git_commit": _git_commit(),
    }  # fmt: skip
    logger = None
    try:
        # 1. Task, tokenizer, prompts.
        device = pick_device(cfg.device)
        torch.manual_seed(cfg.seed)
        task = build_task(cfg.task)
        tokenizer = build_tokenizer(cfg.model, task.vocabulary)
        train_prompts, eval_prompts = prompt_splits(task, cfg.stage_seed)

        # 2. Cached stages.
        stages = prepare_stages(cfg, task, tokenizer, train_prompts, device)
        summary["stages"] = {
            name: {"hash": m["key"], **{k: v for k, v in m["info"].items() if isinstance(v, (int, float, str))}}
            for name, m in stages.manifests.items()
        }

        # 3. Frozen models; from here every forward pass is metered.
        meter, phases = Meter(cfg.budget), Phases(device)
        reference = meter.watch(frozen(load_policy(stages.sft).to(device)), "reference")
        reward_model = meter.watch(frozen(ScalarHeadModel.from_pretrained(stages.reward_model).to(device)), "reward_model")
        logger = RunLogger(
            cfg.logger, run_dir, name=run_dir.name, group=cfg.logger.group or group, job_type=cfg.algo.name,
            tags=[cfg.task.name, Path(describe(cfg.model)).name[:64]], config=resolved_config,  # wandb caps tags at 64
            keep_rows=resume["runner"]["rows"] if resume else 0,
        )  # fmt: skip

        # 4. Evaluator and the SFT baseline at compute 0 (outside the budget).
        with meter.paused(), autocast(device):
            evaluator = Evaluator(cfg.eval, task, tokenizer, eval_prompts, reference, reward_model)
            if resume is None:
                summary["sft"] = evaluator.baseline
                logger.log(summary["sft"] | meter.metrics())

        # 5. Train under the budget.
        torch.manual_seed(cfg.seed)
        reward_source = resolve_reward_source(cfg.reward, task)
        summary["reward_source"] = reward_source.value
        ctx = Context(task, tokenizer, device, meter, phases, train_prompts, stages, reference, reward_model, reward_source, cfg.seed)
        meter.start()
        trainer = build_trainer(cfg.algo, ctx)
        state = {"iteration": 0, "next_eval": cfg.budget.eval_every, "next_ckpt": cfg.checkpoint_every, "last_eval": {}}
        if resume is not None:
            trainer.load_state_dict(resume["trainer"])
            meter.load_state_dict(resume["meter"])
            state, summary["sft"] = resume["runner"], resume["runner"]["sft"]
            _set_rng_state(resume["rng"])
            summary["resumed_at_iteration"] = state["iteration"]
            log.info("resuming %s from iteration %d (%.0f%% of the budget)", run_dir, state["iteration"], 100 * meter.spent_fraction())
        iteration, next_eval, next_ckpt, last_eval = state["iteration"], state["next_eval"], state["next_ckpt"], state["last_eval"]
        while not meter.exhausted():
            step_start, flops_before, tokens_before = time.perf_counter(), meter.flops, meter.tokens
            with autocast(device):
                row = trainer.step()
            iteration += 1
            step_s = time.perf_counter() - step_start
            row |= phases.pop() | {
                "compute/iterations": iteration,
                "perf/step_s": step_s,
                "perf/tokens_per_s": (meter.tokens - tokens_before) / step_s,
                "perf/flops_per_s": (meter.flops - flops_before) / step_s,
            }
            if "perf/phase_s/rollout" in row:
                row["perf/generation_share"] = row["perf/phase_s/rollout"] / step_s
            logger.log(row | meter.metrics())
            _finite_or_raise(row, iteration)
            done = meter.spent_fraction()
            if done >= next_eval or meter.exhausted():
                with meter.paused(), autocast(device):
                    last_eval = evaluator.evaluate(trainer.policy)
                logger.log(last_eval | meter.metrics())
                next_eval += cfg.budget.eval_every * math.floor((done - next_eval) / cfg.budget.eval_every + 1)
            if done >= next_ckpt or meter.exhausted():  # the last one holds the final policy
                next_ckpt += cfg.checkpoint_every * math.floor((done - next_ckpt) / cfg.checkpoint_every + 1)
                runner_state = {
                    "iteration": iteration, "next_eval": next_eval, "next_ckpt": next_ckpt, "last_eval": last_eval,
                    "rows": logger.rows, "sft": summary["sft"], "config": resolved_config,
                }  # fmt: skip
                checkpoint = {"trainer": trainer.state_dict(), "meter": meter.state_dict(), "runner": runner_state, "rng": _rng_state()}
                with meter.paused():
                    _atomic_write(run_dir / CHECKPOINT, lambda p: torch.save(checkpoint, p))

        # 6. Summary.
        summary["final"] = last_eval | meter.metrics()
        summary["memory"] = trainer.memory() | {f"memory/peak_bytes/{k}": float(v) for k, v in phases.peak.items()}
        summary["perf"] = {
            "flops_per_s": meter.flops / max(meter.seconds, 1e-9),
            "generation_share": phases.total_seconds.get("rollout", 0.0) / max(meter.seconds, 1e-9),
        }
        summary["status"] = "finished"
    except Diverged as e:
        log.error("run diverged: %s", e)
        summary |= {"status": "diverged", "diverged": {"metric": e.metric, "value": str(e.value), "step": e.step}}
    except ConfigError:
        raise
    except Exception:  # a failed run must not stop the sweep; the traceback goes in its summary
        log.exception("run failed")
        summary["error"] = traceback.format_exc()
    finally:
        summary["wall_s"] = time.time() - started
        _atomic_write(summary_path, lambda p: p.write_text(json.dumps(summary, indent=2, default=str)))
        if logger is not None:
            logger.summary(summary.get("final", {}) | {"status": summary["status"]})
            logger.close(exit_code=0 if summary["status"] == "finished" else 1)
    return summary
