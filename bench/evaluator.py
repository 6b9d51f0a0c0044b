"""One evaluator for every trainer: fresh samples on held-out prompts, scored the same way.

Two held-out sets, scored alike: the test prompts as `eval/*` (every reported number) and
the validation prompts as `val/*` (the tuning objective, never reported as a result).

    eval/gold_reward      mean gold reward (the hidden truth)
    eval/proxy_reward     mean reward-model score of the same samples
    eval/kl_to_ref        mean over samples of Σ_t (log π - log π_ref): sequence-level KL
                          on fresh samples, never a trainer's own estimator (best-of-N,
                          which is no one model: estimated from its N candidates'
                          reference log-probs, at most log N - (N - 1)/N)
    eval/win_rate_vs_sft  P(gold(policy sample) > gold(SFT sample)) on the same prompt, ties ½
    eval/length           mean completion tokens, EOS included
    eval/accuracy         share exactly right (tasks with a checker)

`samples` holds the first `eval.log_samples` test samples of the latest evaluation (prompt,
completion, gold and proxy reward, log-ratio to the reference), for the run's
samples.jsonl and wandb table: the place to watch reward hacking happen.

Sampling runs inside `torch.random.fork_rng` with fixed seeds, so the training stream is
left untouched and every trainer and seed is scored on the same random stream. The policy
and the SFT baseline draw from two independent streams (`seed`, `seed + 1`): on one
stream a policy near the SFT model repeats the baseline's samples token for token (82 %
identical tokens in issue 9's measurement, 9 % on independent streams), identical samples
tie, and the win rate is pulled toward ½. The validation set has two streams of its own
(`seed + 2`, `seed + 3`), so adding it left every `eval/*` number as it was.
"""

from __future__ import annotations

from typing import Protocol

import torch

from bench.config import EvalConfig
from bench.rollout import Batch, reward_scores, sample, token_logprobs
from bench.tasks import Task

SPLITS = ("eval", "val")
"""Metric prefixes: test prompts, validation prompts."""


class SelfSampling(Protocol):
    """A policy that is not one model's ancestral sampling (best-of-N): it draws its own samples, on the
    evaluator's random stream, and knows its sequence-level KL to the reference (`eval/kl_to_ref`)."""

    device: torch.device

    def sample(self, prompts: list[str], max_new_tokens: int, temperature: float) -> Batch: ...
    def kl_to_ref(self, batch: Batch) -> torch.Tensor: ...  # [B]


class Evaluator:
    def __init__(self, cfg: EvalConfig, task: Task, tokenizer, test: list[str], val: list[str], reference, reward_model):
        self.cfg, self.task, self.tokenizer = cfg, task, tokenizer
        self.prompts = {"eval": test, "val": val}
        self.reference, self.reward_model = reference, reward_model
        self.samples: list[dict] = []
        self.sft_gold: dict[str, torch.Tensor] = {}
        self.baseline: dict[str, float] = {}
        for i, split in enumerate(SPLITS):
            batches, self.sft_gold[split] = self._samples(reference, split, self.cfg.seed + 2 * i + 1)
            # the SFT model's metrics at compute 0, scored on the samples the win rate compares against
            self.baseline |= self._score(reference, split, batches, self.sft_gold[split])

    def _draw(self, policy, prompts: list[str]) -> Batch:
        if isinstance(policy, torch.nn.Module):
            return sample(policy, self.tokenizer, prompts, self.task.cfg.max_new_tokens, self.cfg.temperature)
        return policy.sample(prompts, self.task.cfg.max_new_tokens, self.cfg.temperature)

    @torch.no_grad()
    def _samples(self, policy, split: str, seed: int) -> tuple[list[Batch], torch.Tensor]:
        prompts = self.prompts[split]
        devices = [torch.device("cuda")] if policy.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            batches = [self._draw(policy, prompts[i : i + self.cfg.batch_size]) for i in range(0, len(prompts), self.cfg.batch_size)]
        gold = torch.tensor([self.task.gold_reward(p, c) for b in batches for p, c in zip(b.prompts, b.completions)])
        return batches, gold

    @torch.no_grad()
    def evaluate(self, policy) -> dict[str, float]:
        """`policy`: the trained model, or a policy that is not one model's sampling (`SelfSampling`)."""
        was_training = isinstance(policy, torch.nn.Module) and policy.training
        if isinstance(policy, torch.nn.Module):
            policy.eval()
        metrics = {}
        for i, split in enumerate(SPLITS):
            batches, gold = self._samples(policy, split, self.cfg.seed + 2 * i)
            metrics |= self._score(policy, split, batches, gold)
        if was_training:
            policy.train()
        return metrics

    def _score(self, policy, split: str, batches: list[Batch], gold: torch.Tensor) -> dict[str, float]:
        proxy, kl, length, correct = [], [], [], []
        for b in batches:
            proxy.append(reward_scores(self.reward_model, b, self.tokenizer.eos_token_id).cpu())
            if isinstance(policy, torch.nn.Module):
                log_ratio = token_logprobs(policy, b, self.cfg.temperature) - token_logprobs(self.reference, b, self.cfg.temperature)
                kl.append((log_ratio * b.completion_mask).sum(-1).cpu())
            else:
                kl.append(policy.kl_to_ref(b).cpu())
            length.append(b.completion_mask.sum(-1).cpu())
            if self.task.has_checker:
                correct += [self.task.correct(p, c) for p, c in zip(b.prompts, b.completions)]
        if split == "eval":
            prompts = [p for b in batches for p in b.prompts]
            completions = [c for b in batches for c in b.completions]
            self.samples = [
                {"prompt": p, "completion": c, "gold_reward": g, "proxy_reward": r, "log_ratio": k}
                for p, c, g, r, k in zip(prompts, completions, gold.tolist(), torch.cat(proxy).tolist(), torch.cat(kl).tolist())
            ][: self.cfg.log_samples]
        wins = (gold > self.sft_gold[split]).float() + 0.5 * (gold == self.sft_gold[split]).float()
        metrics = {
            "gold_reward": gold.mean().item(),
            "proxy_reward": torch.cat(proxy).mean().item(),
            "kl_to_ref": torch.cat(kl).mean().item(),
            "win_rate_vs_sft": wins.mean().item(),
            "length": torch.cat(length).mean().item(),
        }
        if self.task.has_checker:
            metrics["accuracy"] = sum(correct) / len(correct)
        return {f"{split}/{k}": v for k, v in metrics.items()}
