"""Peak memory of `token_logprobs` at a 49 k vocabulary (SmolLM2's 49 152): the chunked log-softmax against the
unchunked one it replaced (commit 5ac6557 and before), with the entropy as the trainers ask for it.

    python scripts/logprob_memory.py [--rows 16] [--tokens 128] [--vocab 49152]

Each case runs in a fresh process on a stub model that returns a fixed [rows, tokens + 1, vocab] float32 logits
tensor, so the figure is the memory `token_logprobs` adds on top of the model's own logits: peak resident
size during the call minus the resident size before it (CPU; on CUDA the allocator's peak would be the
measure). `scoring` is the no-grad pass (old and reference log-probs, the evaluator); `update` keeps the
graph for a backward pass, as a trainer's minibatch does.

Measured with the code of commit 60cb9ec on the 2-core CPU (16 × 128 tokens, 387 MiB of logits): scoring 1 542 MiB unchunked,
151 MiB chunked (10.2×); update 1 542 MiB and 487 MiB (3.2×: the log-softmax kept for the backward pass).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys

import psutil
import torch
import torch.nn.functional as F

from bench.rollout import Batch, token_logprobs


def unchunked(model, batch: Batch, temperature: float = 1.0, with_entropy: bool = False):
    """`token_logprobs` before the chunking: the whole [B, C, V] log-softmax, then its exp() for the entropy."""
    logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, position_ids=batch.position_ids).logits
    logits = logits[:, batch.prompt_len - 1 : -1].float() / temperature
    logp_all = F.log_softmax(logits, -1)
    logp = logp_all.gather(-1, batch.input_ids[:, batch.prompt_len :, None]).squeeze(-1)
    return logp, -(logp_all.exp() * logp_all).sum(-1)


class StubModel(torch.nn.Module):
    def __init__(self, logits: torch.Tensor):
        super().__init__()
        self.logits = torch.nn.Parameter(logits)

    def forward(self, **_):
        return type("Output", (), {"logits": self.logits})


def measure(variant: str, mode: str, rows: int, tokens: int, vocab: int) -> float:
    torch.manual_seed(0)
    model = StubModel(torch.randn(rows, tokens + 1, vocab))
    model.requires_grad_(mode == "update")
    ids = torch.randint(vocab, (rows, tokens + 1))
    batch = Batch(ids, torch.ones_like(ids), torch.ones(rows, tokens), 1, [""] * rows, [""] * rows, torch.ones(rows, dtype=torch.bool))
    fn = token_logprobs if variant == "chunked" else unchunked
    before = psutil.Process().memory_info().rss
    with torch.set_grad_enabled(mode == "update"):
        logp, entropy = fn(model, batch, 0.9, with_entropy=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
    return max(peak - before, 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=16)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--vocab", type=int, default=49152)
    parser.add_argument("--one", nargs=2, metavar=("VARIANT", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(*args.one, args.rows, args.tokens, args.vocab)))
        return
    size = lambda b: f"{b / 2**20:,.0f} MiB"  # noqa: E731
    logits = args.rows * (args.tokens + 1) * args.vocab * 4
    print(f"[{args.rows}, {args.tokens}, {args.vocab}] float32 logits: {size(logits)} (the model's own, not counted below)")
    print("| pass | unchunked | chunked | ratio |\n|---|---|---|---|")
    for mode in ("scoring", "update"):
        peak = {}
        for variant in ("unchunked", "chunked"):
            cmd = [sys.executable, __file__, "--rows", str(args.rows), "--tokens", str(args.tokens), "--vocab", str(args.vocab), "--one", variant, mode]
            peak[variant] = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)
        print(f"| {mode} | {size(peak['unchunked'])} | {size(peak['chunked'])} | {peak['unchunked'] / max(peak['chunked'], 1):.1f}× |")


if __name__ == "__main__":
    main()
