"""What scoring a cut-off completion at a word token does to the reward model's scores.

    python scripts/truncation_scores.py [overrides...]      # default: task=sentiment, small preset, stage_seed=0
    python scripts/truncation_scores.py --policy=<run dir>  # a trained policy's samples (its checkpoint.pt)

Samples completions from the cached SFT model (or a run's final policy) on the held-out
prompts and scores each with
the cached reward model two ways: at its last token (the old rule: a cut-off completion is
read at a word token, a position the reward model never trained on) and closed by an EOS
(`reward_scores`, the rule every trainer and the evaluator use). Prints, for the cut-off
samples, the mean score difference between the two rules, and over all samples each
rule's Pearson correlation with the gold reward.
"""

from __future__ import annotations

import sys

import torch
from hydra import compose, initialize_config_dir

from bench import rundir
from bench.app import CONF_DIR
from bench.config import to_object
from bench.models import ScalarHeadModel, build_tokenizer, load_policy
from bench.rollout import last_token_scores, reward_scores, sample
from bench.runner.build import pick_device
from bench.stages import prepare_stages
from bench.tasks import build_task, prompt_splits


@torch.no_grad()
def main(overrides: list[str], run_dir: str | None) -> None:
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = to_object(compose("config", overrides=["task=sentiment", "stage_seed=0", *overrides]))
    device = pick_device(cfg.device)
    task = build_task(cfg.task)
    tokenizer = build_tokenizer(cfg.model, task.vocabulary)
    prompts = prompt_splits(task, cfg.stage_seed)
    held_out = prompts.test
    stages = prepare_stages(cfg, task, tokenizer, prompts.train, device)
    policy = load_policy(stages.sft).to(device).eval()
    if run_dir:
        policy.load_state_dict(rundir.read_checkpoint(f"{run_dir}/checkpoint.pt")["trainer"]["policy"])
    rm = ScalarHeadModel.from_pretrained(stages.reward_model).to(device).eval()
    torch.manual_seed(0)
    at_word, closed, gold, ended = [], [], [], []
    for _ in range(4):  # 4 draws per held-out prompt
        for i in range(0, len(held_out), 128):
            batch = sample(policy, tokenizer, held_out[i : i + 128], task.cfg.max_new_tokens)
            values = rm(batch.input_ids, attention_mask=batch.attention_mask, position_ids=batch.position_ids)
            at_word.append(last_token_scores(values[:, batch.prompt_len :].float(), batch.completion_mask))
            closed.append(reward_scores(rm, batch, tokenizer.eos_token_id))
            gold.append(torch.tensor([task.gold_reward(p, c) for p, c in zip(batch.prompts, batch.completions)]))
            ended.append(batch.ended)
    at_word, closed, gold, ended = (torch.cat(x).cpu().float() for x in (at_word, closed, gold, ended))
    cut = ended == 0
    corr = lambda x: torch.corrcoef(torch.stack([x, gold]))[0, 1].item()  # noqa: E731
    print(f"samples: {len(gold)}, cut off at max_new_tokens={task.cfg.max_new_tokens}: {cut.float().mean():.1%}")
    if cut.any():
        print(f"cut-off samples: score at the word token - score closed by EOS = {(at_word - closed)[cut].mean():+.3f} (mean)")
    print(f"correlation with gold, all samples: read at the last token {corr(at_word):.3f}, closed by EOS {corr(closed):.3f}")


if __name__ == "__main__":
    run_dirs = [a.removeprefix("--policy=") for a in sys.argv[1:] if a.startswith("--policy=")]
    main([a for a in sys.argv[1:] if not a.startswith("--policy=")], run_dirs[0] if run_dirs else None)
