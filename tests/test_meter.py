"""The meter's FLOPs against torch.utils.flop_counter on the presets (within 10 %)."""

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from bench.config import BudgetConfig, BudgetUnit, ModelConfig
from bench.meter import Meter
from bench.models import ScalarHeadModel, build_policy, build_tokenizer, matmul_params
from bench.tasks.sentiment import Sentiment, SentimentConfig
from tests.conftest import compose_config

VOCAB = Sentiment(SentimentConfig(name="sentiment")).vocabulary


def _preset(name: str) -> ModelConfig:
    return ModelConfig(**{k: v for k, v in compose_config(f"model={name}").model.items()})


@pytest.mark.parametrize("preset", ["tiny", "small"])
@pytest.mark.parametrize("head", ["lm", "scalar"])
def test_forward_backward_flops_match_flop_counter(preset, head):
    cfg = _preset(preset)
    model = build_policy(cfg, build_tokenizer(cfg, VOCAB))
    if head == "scalar":
        model = ScalarHeadModel.from_policy(model)
    meter = Meter(BudgetConfig())
    meter.watch(model, "m")
    ids = torch.randint(4, 30, (8, 24))
    with FlopCounterMode(display=False) as counter:
        out = model(input_ids=ids, attention_mask=torch.ones_like(ids))
        (out.logits if head == "lm" else out).float().mean().backward()
    reference = counter.get_total_flops()
    assert meter.flops == pytest.approx(reference, rel=0.10)
    assert meter.tokens == 8 * 24


def test_generation_is_counted_per_decoded_token():
    """Prefill of P tokens then one token per step: 2·N·(P + n - 1)·B plus attention, far less than n full passes."""
    cfg = _preset("tiny")
    tok = build_tokenizer(cfg, VOCAB)
    model = build_policy(cfg, tok).eval()
    meter = Meter(BudgetConfig())
    meter.watch(model, "policy")
    ids = torch.randint(4, 30, (4, 6))
    with torch.no_grad():
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=5, min_new_tokens=5,
                             do_sample=True, top_k=0, pad_token_id=tok.pad_token_id)  # fmt: skip
    assert out.shape[1] == 11
    assert meter.tokens == 4 * (6 + 4)  # prefill 6, then the 4 tokens after the first are fed back one at a time
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=5, min_new_tokens=5,
                       do_sample=True, top_k=0, pad_token_id=tok.pad_token_id)  # fmt: skip
    assert meter.flops / 2 == pytest.approx(counter.get_total_flops(), rel=0.10)


def test_paused_meter_counts_nothing_and_budget_units():
    cfg = _preset("tiny")
    model = build_policy(cfg, build_tokenizer(cfg, VOCAB))
    meter = Meter(BudgetConfig(unit=BudgetUnit.steps, amount=4))
    meter.watch(model, "policy")
    with meter.paused(), torch.no_grad():
        model(input_ids=torch.ones(2, 3, dtype=torch.long))
    assert meter.flops == 0
    meter.steps = 3
    assert meter.spent_fraction() == 0.75 and not meter.exhausted()
    meter.steps = 4
    assert meter.exhausted()


def test_the_vocabulary_head_is_counted_on_the_positions_kept():
    """`logits_to_keep=k` (bench/rollout.py asks for the completion's positions): the head's V·d weights run on B·k
    rows, every other matmul on B·T. Forward 2·(N - V·d)·B·T + 2·V·d·B·k + A, the backward twice that (every
    weight trained), against torch's flop counter, and less than the same pass with every position's logits."""
    cfg = _preset("small")
    model = build_policy(cfg, build_tokenizer(cfg, VOCAB))
    meter = Meter(BudgetConfig())
    meter.watch(model, "m")
    ids = torch.randint(4, 30, (8, 24))
    with FlopCounterMode(display=False) as counter:
        model(input_ids=ids, attention_mask=torch.ones_like(ids), logits_to_keep=6).logits.float().mean().backward()
    n, head = matmul_params(model), model.lm_head.weight.numel()
    layers, width = model.config.num_hidden_layers, model.config.hidden_size
    forward = 2 * (n - head) * 8 * 24 + 2 * head * 8 * 6 + 4 * layers * width * 8 * 24 * 24
    assert meter.flops == 3 * forward
    assert meter.flops == pytest.approx(counter.get_total_flops(), rel=0.10)
    kept = meter.flops
    everything = Meter(BudgetConfig())
    everything.watch(model, "m")
    model(input_ids=ids, attention_mask=torch.ones_like(ids))
    assert everything.flops > kept
