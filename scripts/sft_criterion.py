"""SFT quality per stage seed: a fixed step count against training to `task.sft_target`.

For each stage seed, builds the SFT stage alone (in the cache named by `cache_dir=`, the default's
otherwise) and prints its held-out quality curve (accuracy where the task has a checker, else gold reward,
on the last `sft.heldout_prompts` train prompts), the step it stopped at, and the same measure on the test
prompts (`stages.heldout_quality`). The spread of that over stage seeds is what the criterion is for.

    python scripts/sft_criterion.py task=arithmetic stage_seeds=0,1,2,3,4 task.sft_target=1e9   # trace only
    python scripts/sft_criterion.py task=sentiment stage_seeds=0,1,2,3,4                       # at the task's target
"""

from __future__ import annotations

import sys

from hydra import compose, initialize_config_dir

from bench.app import CONF_DIR
from bench.config import to_object
from bench.models import build_tokenizer, load_policy
from bench.runner.build import pick_device
from bench.stages import heldout_quality, prepare_sft
from bench.tasks import build_task, prompt_splits


def main(argv: list[str]) -> None:
    seeds = next((a.split("=", 1)[1] for a in argv if a.startswith("stage_seeds=")), "0,1,2")
    overrides = [a for a in argv if not a.startswith("stage_seeds=")]
    rows = []
    for stage_seed in map(int, seeds.split(",")):
        with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
            cfg = to_object(compose("config", overrides=[*overrides, f"stage_seed={stage_seed}"]))
        device = pick_device(cfg.device)
        task = build_task(cfg.task)
        tokenizer = build_tokenizer(cfg.model, task.vocabulary)
        prompts = prompt_splits(task, stage_seed)
        path, manifest = prepare_sft(cfg, task, tokenizer, prompts.train, device)
        info = manifest["info"]
        test = heldout_quality(load_policy(path).to(device), tokenizer, task, prompts.test, cfg.eval)
        metric = "accuracy" if task.has_checker else "gold reward"
        curve = " ".join(f"{int(s)}:{q:.2f}" for s, q in info.get("quality_curve", []))
        rows.append((stage_seed, info.get("steps", cfg.sft.steps), info.get("heldout_quality", float("nan")), test))
        print(f"stage seed {stage_seed}: steps {rows[-1][1]}, held-out {rows[-1][2]:.3f}, test {metric} {test:.3f} | {curve}", flush=True)
    tests = [r[3] for r in rows]
    print(f"{cfg.task.name} target {cfg.task.sft_target}: test {metric} per stage seed {', '.join(f'{t:.3f}' for t in tests)}; "
          f"spread (max - min) {max(tests) - min(tests):.3f}")  # fmt: skip


if __name__ == "__main__":
    main(sys.argv[1:])
