"""Which sampler should the rollout use: transformers' `generate`, or a plain KV-cache loop?

`bench.rollout.sample` is the loop. Both sample from the same model on the same prompts (plain ancestral sampling,
temperature 1). The two are timed interleaved, round after round, and reported as a
ratio, so a noisy shared machine affects both alike.

    python scripts/bench_generation.py --preset small --batch 64 --rounds 20
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from bench.config import ModelConfig
from bench.models import build_policy, build_tokenizer
from bench.rollout import encode_prompts, sample
from bench.tasks import prompt_splits
from bench.tasks.sentiment import Sentiment, SentimentConfig

PRESETS = {"tiny": dict(hidden_size=64, num_layers=2, intermediate_size=128), "small": dict(hidden_size=128, num_layers=4, intermediate_size=256)}


@torch.no_grad()
def hf_generate(model, tokenizer, prompts: list[str], max_new_tokens: int) -> torch.Tensor:
    """The alternative: transformers' `generate` with the same plain sampling."""
    ids, mask = encode_prompts(tokenizer, prompts, model.device)
    return model.generate(
        input_ids=ids, attention_mask=mask, max_new_tokens=max_new_tokens, do_sample=True, top_k=0, top_p=1.0,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="small", choices=PRESETS)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--max-new-tokens", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()

    task = Sentiment(SentimentConfig(name="sentiment", max_new_tokens=args.max_new_tokens))
    cfg = ModelConfig(preset=args.preset, **PRESETS[args.preset])
    tokenizer = build_tokenizer(cfg, task.vocabulary)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = build_policy(cfg, tokenizer).to(device).eval()
    prompts = prompt_splits(task, 0).train[: args.batch]
    # a random model rarely emits EOS: both samplers run the full max_new_tokens, a like-for-like cost
    samplers = {
        "generate": lambda: hf_generate(model, tokenizer, prompts, args.max_new_tokens),
        "kv_loop": lambda: sample(model, tokenizer, prompts, args.max_new_tokens),  # bench.rollout.sample
    }
    times: dict[str, list[float]] = {name: [] for name in samplers}
    for name, fn in samplers.items():  # warm-up
        fn()
    for _ in range(args.rounds):
        for name, fn in samplers.items():
            start = time.perf_counter()
            fn()
            if device.type == "cuda":
                torch.cuda.synchronize()
            times[name].append(time.perf_counter() - start)
    med = {name: statistics.median(t) for name, t in times.items()}
    print(f"device={device.type} preset={args.preset} batch={args.batch} max_new_tokens={args.max_new_tokens} rounds={args.rounds}")
    for name, t in med.items():
        print(f"  {name:9s} median {t * 1e3:7.2f} ms per batch")
    print(f"  kv_loop / generate = {med['kv_loop'] / med['generate']:.2f}")


if __name__ == "__main__":
    main()
