"""What LoRA costs the decode on the real model, and how much of it is peft's per-layer Python, not the adapters'
matmuls: the bound on a sampler that skipped peft's forward.

    python scripts/lora_decode_overhead.py [--rounds 3] [--threads N]

Builds GRPO's run of `experiment=smollm2_sentiment` scaled as scripts/real_step_speed.py does, with LoRA (rank 16,
every linear layer) in bf16 (`lora_bf16`), and samples its rollout (4 prompts × 4, up to the task's completion
length) four ways, interleaved, from one seed:

    base      the frozen base alone (the reference): no adapters, the floor
    peft      the policy as every run samples it: peft's `Linear.forward` on each of the 210 adapted layers
    no_cast   the same without peft casting the input to the adapters' float32 (`disable_input_dtype_casting`):
              under autocast that cast is undone at once by the adapter's matmul
    lean      base(x) + B(A(x))·s, the very ops of peft's vanilla-LoRA branch without its checks and bookkeeping

`no_cast` and `lean` draw the same tokens as `peft` (printed): they change no number. The gap between `lean` and
`peft` is peft's per-layer overhead; between `base` and `lean`, the adapters' own two matmuls per layer.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time

import peft.tuners.lora.layer as lora_layer
import torch
from peft.helpers import disable_input_dtype_casting
from real_step_speed import built_run

from bench.rollout import sample


@contextlib.contextmanager
def lean_lora():
    def forward(self, x, *args, **kwargs):
        (name,) = self.active_adapters
        return self.base_layer(x) + self.lora_B[name](self.lora_A[name](x)) * self.scaling[name]

    original = lora_layer.Linear.forward
    lora_layer.Linear.forward = forward
    try:
        yield
    finally:
        lora_layer.Linear.forward = original


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--cache-dir", default=".cache/rlhf-bench")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    b = built_run("grpo", "lora_bf16", args.cache_dir)
    trainer, ctx = b.trainer, b.trainer.ctx
    prompts = [p for p in ctx.train_prompts[:4] for _ in range(4)]
    ways = {
        "base": (ctx.reference, contextlib.nullcontext),
        "peft": (trainer.policy, contextlib.nullcontext),
        "no_cast": (trainer.policy, lambda: disable_input_dtype_casting(trainer.policy)),
        "lean": (trainer.policy, lean_lora),
    }
    seconds: dict[str, list[float]] = {way: [] for way in ways}
    tokens: dict[str, torch.Tensor] = {}
    for round_ in range(args.rounds + 1):
        for way, (model, context) in ways.items():
            torch.manual_seed(round_)
            with b.precision(), context():
                start = time.perf_counter()
                batch = sample(model, ctx.tokenizer, prompts, ctx.task.cfg.max_new_tokens)
                elapsed = time.perf_counter() - start
            tokens[way] = batch.input_ids
            if round_:  # the first round warms up
                seconds[way].append(elapsed)
        same = {way: torch.equal(tokens[way], tokens["peft"]) for way in ("no_cast", "lean")}
        print(f"round {round_}: the same tokens as peft: {same}")
    print(f"GRPO rollout of {len(prompts)} completions, LoRA rank 16 in bf16, {args.threads} threads, median of {args.rounds}:")
    floor = statistics.median(seconds["base"])
    for way, s in seconds.items():
        print(f"  {way:8s} {statistics.median(s):6.2f} s   {statistics.median(s) / floor:4.2f}x the base's")


if __name__ == "__main__":
    main()
