"""How much room each task leaves above its SFT model: SFT gold reward and accuracy against the best possible,
and the reward model's held-out accuracy. Builds (or reads from the cache) the stages of each task.

    python scripts/task_headroom.py                      # every task, default config (small preset)
    python scripts/task_headroom.py model=tiny sft.steps=150
"""

from __future__ import annotations

import sys

import torch
from hydra import compose, initialize_config_dir

from bench.app import CONF_DIR
from bench.config import to_object
from bench.evaluator import Evaluator
from bench.models import ScalarHeadModel, build_tokenizer, load_policy
from bench.runner.build import pick_device
from bench.stages import prepare_stages
from bench.tasks import TASKS, build_task, prompt_splits


def main(overrides: list[str]) -> None:
    print("| task | SFT gold reward | best gold reward | SFT accuracy | RM held-out accuracy | RM agreement with gold order |")
    print("|---|---|---|---|---|---|")
    for name in sorted(TASKS):
        with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
            cfg = to_object(compose("config", overrides=[f"task={name}", *overrides]))
        device = pick_device(cfg.device)
        task = build_task(cfg.task)
        tokenizer = build_tokenizer(cfg.model, task.vocabulary)
        prompts = prompt_splits(task, cfg.stage_seed)
        stages = prepare_stages(cfg, task, tokenizer, prompts.train, device)
        reference = load_policy(stages.sft).to(device).eval()
        rm = ScalarHeadModel.from_pretrained(stages.reward_model).to(device).eval()
        with torch.no_grad():
            sft = Evaluator(cfg.eval, task, tokenizer, prompts.test, prompts.val, reference, rm).baseline
        info = stages.manifests["reward_model"]["info"]
        acc = f"{sft['eval/accuracy']:.3f}" if "eval/accuracy" in sft else "-"
        gold_order = f"{info['heldout_gold_accuracy']:.3f}" if "heldout_gold_accuracy" in info else "-"
        print(f"| {name} | {sft['eval/gold_reward']:.3f} | {task.best_gold_reward:.3f} | {acc} | {info['heldout_accuracy']:.3f} | {gold_order} |")


if __name__ == "__main__":
    main(sys.argv[1:])
