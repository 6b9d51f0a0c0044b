"""LoRA adapters (`model.lora.*`, bench/models.py `with_lora`): the reference is the trained model's base with no
adapters, one copy of the weights; only adapters train; the meter counts what runs; checkpoints hold the
adapters alone and resume to the uninterrupted run."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from bench.config import BudgetConfig, ConfigError, LoraConfig
from bench.meter import Meter
from bench.models import (
    ScalarHeadModel,
    build_policy,
    build_tokenizer,
    load_trained_state,
    matmul_params,
    trained_state,
    with_lora,
)
from bench.optim import adamw
from bench.rollout import make_batch, token_logprobs
from bench.rundir import identity
from tests.conftest import tiny_config
from tests.test_meter import VOCAB, _preset
from tests.test_reliability import stop_after_a_checkpoint_and_resume

LORA = LoraConfig(rank=4, alpha=8.0)


def _tiny_pair():
    cfg = _preset("tiny")
    tok = build_tokenizer(cfg, VOCAB)
    torch.manual_seed(0)
    sft = build_policy(cfg, tok)
    reference = build_policy(cfg, tok)
    reference.load_state_dict(sft.state_dict())
    reference.requires_grad_(False)
    policy = build_policy(cfg, tok)
    policy.load_state_dict(sft.state_dict())
    return tok, sft, reference, with_lora(policy, LORA, reference)


def test_the_reference_is_the_base_with_no_adapters_and_only_adapters_train():
    tok, sft, reference, policy = _tiny_pair()
    batch = make_batch(tok, ["good great", "bad"], ["nice movie", "awful film plot"], "cpu")
    with torch.no_grad():
        sft_logp = token_logprobs(sft, batch)
        assert torch.equal(token_logprobs(reference, batch), sft_logp)
        assert torch.equal(token_logprobs(policy, batch), sft_logp)  # LoRA's B starts at zero: step 0 is the SFT model
    # the base is the reference's own tensors: one copy in memory
    base = {n.replace(".base_layer", ""): p for n, p in policy.named_parameters() if "lora_" not in n}
    assert all(base[n].data_ptr() == p.data_ptr() for n, p in reference.named_parameters())

    optimizer = adamw(policy, 1e-2)
    for _ in range(3):
        (-(token_logprobs(policy, batch) * batch.completion_mask).sum()).backward()
        with_grad = {n for n, p in policy.named_parameters() if p.grad is not None}
        optimizer.step()
        optimizer.zero_grad()
    assert with_grad and all("lora_" in n for n in with_grad)
    with torch.no_grad():
        assert torch.equal(token_logprobs(reference, batch), sft_logp)  # the reference never moves
        assert not torch.equal(token_logprobs(policy, batch), sft_logp)  # the policy does


def test_a_critic_gets_adapters_over_the_reward_models_body_and_its_own_head():
    _, sft, _, _ = _tiny_pair()
    reward_model = ScalarHeadModel.from_policy(sft).requires_grad_(False)
    critic = with_lora(ScalarHeadModel.from_policy(sft), LORA, reward_model)
    trainable = {n for n, p in critic.named_parameters() if p.requires_grad}
    assert {"head.weight", "head.bias"} <= trainable and all("lora_" in n or n.startswith("head.") for n in trainable)
    assert critic.head.weight.data_ptr() != reward_model.head.weight.data_ptr()
    assert critic.backbone.embed_tokens.weight.data_ptr() == reward_model.backbone.embed_tokens.weight.data_ptr()


def test_the_meter_counts_a_lora_step_by_hand_and_by_the_flop_counter():
    """Tiny preset, LoRA rank 4 on every linear layer but the head (`all-linear`). Per layer of width d = 64 and
    MLP width 128: q, k, v, o take 4·(64·64) base and 4·4·(64 + 64) adapter weights, gate, up, down 3·(64·128)
    and 3·4·(64 + 128); two layers, plus the head V·64. So N = N_base + N_A with N_A = 2·(2 048 + 2 304) = 8 704,
    the trained matmul weights N_t = N_A. A batch of B = 8 sequences of T = 24 tokens, t = 192 tokens, A =
    4·L·d·B·T·T = 4·2·64·8·24·24 = 2 359 296 for the attention scores:

        forward  2·N·t + A
        backward 2·N·t + 2·A + 2·N_A·t   (activation gradients through everything, weight gradients for the
                                          adapters only)

    torch's flop counter finds 15 % less here: autograd skips the gradient into the first block's input when
    the embedding below it is frozen, 2·t·(3·64·64 + 2·64·128) = 11 M of the meter's 82 M with one of two
    blocks first. The meter keeps the architecture-free count; on SmolLM2's 30 blocks the first block's input
    projections are 1.7 % of N, about 1 % of a LoRA step.
    """
    _, _, _, policy = _tiny_pair()
    n_all = matmul_params(policy)
    n_adapters = 2 * (4 * 4 * (64 + 64) + 3 * 4 * (64 + 128))
    assert n_adapters == 8704 and matmul_params(policy, trainable=True) == n_adapters
    assert n_all - n_adapters == 2 * (4 * 64 * 64 + 3 * 64 * 128) + policy.config.vocab_size * 64
    tokens, attention = 8 * 24, 4 * 2 * 64 * 8 * 24 * 24
    meter = Meter(BudgetConfig())
    meter.watch(policy, "policy")
    ids = torch.randint(4, 30, (8, 24))
    with FlopCounterMode(display=False) as counter:
        policy(input_ids=ids, attention_mask=torch.ones_like(ids)).logits.float().mean().backward()
    by_hand = (2 * n_all * tokens + attention) + (2 * n_all * tokens + 2 * attention + 2 * n_adapters * tokens)
    assert meter.flops == by_hand
    assert counter.get_total_flops() < meter.flops < 1.2 * counter.get_total_flops()
    # the same model with every weight trained: the usual 3 × forward, and more than the LoRA step
    full = Meter(BudgetConfig())
    full.watch(policy.requires_grad_(True), "policy")
    policy(input_ids=ids, attention_mask=torch.ones_like(ids))
    assert full.flops == 3 * (2 * n_all * tokens + attention) > by_hand


def test_a_lora_checkpoint_holds_the_adapters_only_and_loads_back():
    _, sft, reference, policy = _tiny_pair()
    state = trained_state(policy)
    assert set(state) == {n for n, p in policy.named_parameters() if p.requires_grad} and all("lora_" in n for n in state)
    assert sum(t.numel() for t in state.values()) < sum(p.numel() for p in sft.parameters()) / 5
    _, _, _, other = _tiny_pair()
    with torch.no_grad():
        for p in policy.parameters():
            if p.requires_grad:
                p.add_(1.0)
    load_trained_state(other, trained_state(policy))
    assert all(torch.equal(a, b) for a, b in zip(other.state_dict().values(), policy.state_dict().values()))
    with pytest.raises(ValueError, match="LoRA checkpoint"):
        load_trained_state(other, {k: v for k, v in state.items() if "lora_B" not in k})


def test_lora_is_part_of_the_identity_and_rank_0_is_the_old_identity(tmp_path):
    _, plain = tiny_config(tmp_path)
    _, lora = tiny_config(tmp_path, "model.lora.rank=4")
    without_key = {**plain, "model": {k: v for k, v in plain["model"].items() if k != "lora"}}
    assert identity(plain) == identity(without_key)  # runs from before the key keep their identity
    assert identity(lora) != identity(plain)
    with pytest.raises(ConfigError, match="model.lora.rank -1 is negative"):
        tiny_config(tmp_path, "model.lora.rank=-1")


@pytest.mark.parametrize("algo", ["ppo", "grpo"])
def test_a_lora_run_writes_small_checkpoints_and_resumes_to_the_uninterrupted_rows(run_tiny, monkeypatch, algo):
    overrides = (f"algo={algo}", "model.lora.rank=4", "algo.lr=3e-3", "budget.amount=3e10", "checkpoint_every=0.3")
    whole_summary, whole = run_tiny(*overrides, name="whole")
    assert whole_summary["status"] == "finished"
    assert whole_summary["final"]["eval/kl_to_ref"] > 0  # the adapters moved the policy away from the reference
    memory = whole_summary["memory"]
    assert memory["memory/reference/param_bytes"] == 0  # held by the policy's base, counted once
    assert 0 < memory["memory/policy/grad_bytes"] < memory["memory/policy/param_bytes"] / 5
    checkpoint = torch.load(whole / "checkpoint.pt", weights_only=True)
    policy_state = checkpoint["trainer"]["policy"]
    assert policy_state and all("lora_" in k for k in policy_state)
    if algo == "ppo":
        assert set(checkpoint["trainer"]["critic"]) - {"head.weight", "head.bias"} and all("lora_" in k or k.startswith("head.") for k in checkpoint["trainer"]["critic"])

    stop_after_a_checkpoint_and_resume(run_tiny, monkeypatch, overrides, whole)
