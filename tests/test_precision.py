"""bf16 (`precision=bf16`; `auto` on CUDA): autocast sees every optimiser step, frozen weights stored in bf16 give
the numbers autocast gives, and a bf16 run lands where float32 runs land over seeds."""

from __future__ import annotations

import statistics

import pytest
import torch
from scipy import stats

from bench.models import build_policy, build_tokenizer, frozen_matmuls_in
from bench.optim import adamw, clip_and_step
from bench.rollout import make_batch, token_logprobs
from tests.test_meter import VOCAB, _preset

BF16 = dict(device_type="cpu", dtype=torch.bfloat16)


def _tiny():
    cfg = _preset("tiny")
    tok = build_tokenizer(cfg, VOCAB)
    torch.manual_seed(0)
    return tok, build_policy(cfg, tok), make_batch(tok, ["good great", "bad"], ["nice movie", "awful film plot"], "cpu")


def test_a_forward_after_an_optimiser_step_in_one_autocast_region_sees_the_new_weights():
    """The case that exposed it: PPO and GRPO take several optimiser steps in one trainer step, which runs in one
    autocast region, and autocast kept the bf16 copy of each weight it had cast before the first of them."""
    _, policy, batch = _tiny()
    optimizer = adamw(policy, 1e-2)
    with torch.autocast(**BF16):
        before = token_logprobs(policy, batch)
        (-before.sum()).backward()
        clip_and_step(policy, optimizer, 1.0)
        after = token_logprobs(policy, batch)
    with torch.autocast(**BF16):
        fresh = token_logprobs(policy, batch)
    assert not torch.equal(after, before)
    assert torch.equal(after, fresh)


def test_frozen_weights_stored_in_bf16_give_autocasts_numbers():
    _, model, batch = _tiny()
    model.requires_grad_(False)
    with torch.no_grad(), torch.autocast(**BF16):
        cast_at_every_call = token_logprobs(model, batch)
    frozen_matmuls_in(model, torch.bfloat16)
    assert model.model.layers[0].self_attn.q_proj.weight.dtype == torch.bfloat16
    assert model.model.embed_tokens.weight.dtype == torch.float32 and model.model.norm.weight.dtype == torch.float32
    with torch.no_grad(), torch.autocast(**BF16):
        assert torch.equal(token_logprobs(model, batch), cast_at_every_call)


def test_a_tied_head_stays_float32():
    cfg = _preset("tiny")
    tok = build_tokenizer(cfg, VOCAB)
    model = build_policy(cfg, tok)
    model.lm_head.weight = model.model.embed_tokens.weight  # tied, as SmolLM2's are
    frozen_matmuls_in(model.requires_grad_(False), torch.bfloat16)
    assert model.lm_head.weight.dtype == torch.float32 and model.model.layers[0].mlp.up_proj.weight.dtype == torch.bfloat16


def test_a_bf16_run_lands_inside_the_float32_runs_prediction_interval(run_tiny):
    """Tolerance: the final test gold reward of a tiny GRPO run (two optimiser steps a rollout) in bf16 lies inside the
    95 % prediction interval of a float32 run's, from four trainer seeds: mean ± t(.975, 3)·sd·√(1 + 1/4). bf16
    moves numbers in the last bits; a change no larger than another seed's is within the benchmark's noise."""
    common = ("algo=grpo", "algo.minibatches=2", "algo.lr=1e-3", "budget.amount=3e10")
    fp32 = [run_tiny(*common, "precision=fp32", f"seed={s}", name=f"fp32_{s}")[0]["final"]["eval/gold_reward"] for s in range(4)]
    bf16, _ = run_tiny(*common, "precision=bf16", "seed=0", name="bf16")
    assert bf16["status"] == "finished"
    half = stats.t.ppf(0.975, 3) * statistics.stdev(fp32) * (1 + 1 / 4) ** 0.5
    mean = statistics.mean(fp32)
    assert mean - half <= bf16["final"]["eval/gold_reward"] <= mean + half, (fp32, bf16["final"]["eval/gold_reward"])
    assert bf16["final"]["eval/gold_reward"] != fp32[0]  # it did compute in bf16


def test_a_lora_ppo_run_in_bf16_keeps_float32_adapters_over_a_bf16_base(run_tiny):
    summary, _ = run_tiny("algo=ppo", "precision=bf16", "model.lora.rank=4", "algo.lr=3e-3", "budget.amount=2e10")
    assert summary["status"] == "finished"
    memory = summary["memory"]
    # the reference's matmul weights (the policy's base, counted with the policy) in bf16: 2 bytes each
    assert memory["memory/reference/param_bytes"] == 0
    # the adapters in float32 (4 bytes each of tests/test_lora.py's 8 704), two AdamW moments each (and a step count)
    assert memory["memory/policy/grad_bytes"] == 4 * 8704
    assert memory["memory/policy/optimizer_bytes"] == pytest.approx(2 * 4 * 8704, rel=0.01)
