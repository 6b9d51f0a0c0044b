"""One evaluator for every trainer: fresh samples on held-out prompts, scored the same way.

    eval/gold_reward      mean gold reward (the hidden truth)
    eval/proxy_reward     mean reward-model score of the same samples
    eval/kl_to_ref        mean over samples of Σ_t (log π - log π_ref): sequence-level KL
                          on fresh samples, never a trainer's own estimator
    eval/win_rate_vs_sft  P(gold(policy sample) > gold(SFT sample)) on the same prompt, ties ½
    eval/length           mean completion tokens, EOS included
    eval/accuracy         share exactly right (tasks with a checker)

`samples` holds the first `eval.log_samples` samples of the latest evaluation (prompt,
completion, gold and proxy reward, log-ratio to the reference), for the run's
samples.jsonl and wandb table: the place to watch reward hacking happen.

Sampling runs inside `torch.random.fork_rng` with fixed seeds, so the training stream is
left untouched and every trainer and seed is scored on the same random stream. The policy
and the SFT baseline draw from two independent streams (`seed`, `seed + 1`): on one
stream a policy near the SFT model repeats the baseline's samples token for token (82 %
identical tokens in issue 9's measurement, 9 % on independent streams), identical samples
tie, and the win rate is pulled toward ½.
"""

from __future__ import annotations

import torch

from bench.config import EvalConfig
from bench.rollout import Batch, reward_scores, sample, token_logprobs
from bench.tasks import Task


class Evaluator:
    def __init__(self, cfg: EvalConfig, task: Task, tokenizer, prompts: list[str], reference, reward_model):
        self.cfg, self.task, self.tokenizer, self.prompts = cfg, task, tokenizer, prompts
        self.reference, self.reward_model = reference, reward_model
        batches, self.sft_gold = self._samples(reference, self.cfg.seed + 1)
        self.samples: list[dict] = []
        # the SFT model's metrics at compute 0, scored on the samples the win rate compares against
        self.baseline = self._score(reference, batches, self.sft_gold)

    @torch.no_grad()
    def _samples(self, policy, seed: int) -> tuple[list[Batch], torch.Tensor]:
        devices = [torch.device("cuda")] if policy.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            batches = [
                sample(policy, self.tokenizer, self.prompts[i : i + self.cfg.batch_size], self.task.cfg.max_new_tokens, self.cfg.temperature)
                for i in range(0, len(self.prompts), self.cfg.batch_size)
            ]
        gold = torch.tensor([self.task.gold_reward(p, c) for b in batches for p, c in zip(b.prompts, b.completions)])
        return batches, gold

    @torch.no_grad()
    def evaluate(self, policy) -> dict[str, float]:
        was_training = policy.training
        policy.eval()
        batches, gold = self._samples(policy, self.cfg.seed)
        metrics = self._score(policy, batches, gold)
        policy.train(was_training)
        return metrics

    def _score(self, policy, batches: list[Batch], gold: torch.Tensor) -> dict[str, float]:
        proxy, kl, length, correct = [], [], [], []
        for b in batches:
            proxy.append(reward_scores(self.reward_model, b, self.tokenizer.eos_token_id).cpu())
            log_ratio = token_logprobs(policy, b, self.cfg.temperature) - token_logprobs(self.reference, b, self.cfg.temperature)
            kl.append((log_ratio * b.completion_mask).sum(-1).cpu())
            length.append(b.completion_mask.sum(-1).cpu())
            if self.task.has_checker:
                correct += [self.task.correct(p, c) for p, c in zip(b.prompts, b.completions)]
        prompts = [p for b in batches for p in b.prompts]
        completions = [c for b in batches for c in b.completions]
        self.samples = [
            {"prompt": p, "completion": c, "gold_reward": g, "proxy_reward": r, "log_ratio": k}
            for p, c, g, r, k in zip(prompts, completions, gold.tolist(), torch.cat(proxy).tolist(), torch.cat(kl).tolist())
        ][: self.cfg.log_samples]
        wins = (gold > self.sft_gold).float() + 0.5 * (gold == self.sft_gold).float()
        metrics = {
            "eval/gold_reward": gold.mean().item(),
            "eval/proxy_reward": torch.cat(proxy).mean().item(),
            "eval/kl_to_ref": torch.cat(kl).mean().item(),
            "eval/win_rate_vs_sft": wins.mean().item(),
            "eval/length": torch.cat(length).mean().item(),
        }
        if self.task.has_checker:
            metrics["eval/accuracy"] = sum(correct) / len(correct)
        return metrics
