"""Everything a run needs, built once from its config: task, prompts, cached stages, the frozen reference and
reward model, meter, evaluator (and the SFT baseline), logger and trainer; and the checks done before any of it."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from bench import distributed
from bench.algos import ALGOS, Context, Trainer, build_trainer, resolve_reward_source
from bench.cache import StageCache, content_digest
from bench.config import Config, ConfigError, Device, Precision, WandbMode, check_source
from bench.evaluator import Evaluator
from bench.logger import Progress, RunLogger
from bench.meter import Meter
from bench.models import ScalarHeadModel, build_tokenizer, describe, frozen_matmuls_in, load_policy
from bench.phases import Phases
from bench.rundir import objective_metric
from bench.stages import prepare_stages
from bench.tasks import build_task, chat_prompts, prompt_splits

log = logging.getLogger(__name__)


def pick_device(choice: Device) -> torch.device:
    if choice == Device.auto:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice == Device.cuda and not torch.cuda.is_available():
        raise ConfigError("device=cuda but no CUDA device is visible; use device=cpu or device=auto")
    return torch.device(Device(choice).value)


def computes_in_bf16(device: torch.device, precision: Precision) -> bool:
    """bf16 autocast on CUDA, float32 on the CPU (the presets' numbers; on a CPU with avx512_bf16 bf16 pays at a
    real model's size: scripts/real_step_speed.py), unless `precision` says."""
    return precision == Precision.bf16 or (precision == Precision.auto and device.type == "cuda")


def autocast(device: torch.device, precision: Precision):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=computes_in_bf16(device, precision))


def frozen(model: torch.nn.Module, device: torch.device, precision: Precision) -> torch.nn.Module:
    """A model no run trains (the reference, the reward model) on the device, in eval mode, without gradients,
    its matmul weights stored in bf16 where the run computes in bf16 (`frozen_matmuls_in`: the same numbers)."""
    model = model.to(device).eval().requires_grad_(False)
    return frozen_matmuls_in(model, torch.bfloat16) if computes_in_bf16(device, precision) else model


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
        name: {"hash": m["key"], "content": content_digest(m), **{k: v for k, v in m["info"].items() if isinstance(v, (int, float, str))}}
        for name, m in stages.manifests.items()
    }

    # From here every forward pass is metered (evaluation runs with the meter paused).
    meter, phases = Meter(cfg.budget), Phases(device)
    reference = meter.watch(frozen(load_policy(stages.sft), device, cfg.precision), "reference")
    reward_model = meter.watch(frozen(ScalarHeadModel.from_pretrained(stages.reward_model), device, cfg.precision), "reward_model")
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
                  cfg.model.gradient_checkpointing, cfg.model.lora)  # fmt: skip
    meter.start()
    with autocast(device, cfg.precision):  # what a trainer computes once (DPO's reference log-probs) in its steps' precision
        trainer = build_trainer(cfg.algo, ctx)
    meter.mark_synced()  # every process built the same trainer: its cost (DPO's reference log-probs) counts once
    if distributed.world() > 1:  # the same start, then each process its own samples
        torch.manual_seed(cfg.seed + distributed.rank() * 2**32)
    return Built(cfg, device, meter, phases, evaluator, logger, progress, trainer, baseline)
