"""Losses against arithmetic worked out by hand (tolerances that can fail)."""

import math

import pytest
import torch

from bench.losses import dpo_loss

LOG2 = math.log(2)


def _dpo(h_chosen, h_rejected, **kw):
    """Policy log-probs chosen/rejected with zero reference, so the log-ratios are the inputs."""
    zeros = torch.zeros(len(h_chosen))
    return dpo_loss(torch.tensor(h_chosen), torch.tensor(h_rejected), zeros, zeros, **kw)


def test_dpo_loss_is_log2_at_equal_logps():
    """h = 0 -> -log σ(0) = log 2, rewards 0."""
    loss, chosen, rejected = dpo_loss(
        torch.tensor([-3.0, -7.0]), torch.tensor([-5.0, -2.0]), torch.tensor([-3.0, -7.0]), torch.tensor([-5.0, -2.0]), beta=0.1
    )
    torch.testing.assert_close(loss, torch.tensor([LOG2, LOG2]))
    torch.testing.assert_close(chosen, torch.zeros(2))
    torch.testing.assert_close(rejected, torch.zeros(2))


def test_dpo_sigmoid_by_hand():
    """Log-ratios (chosen, rejected) = (0, 0), (10, 0), (0, -20) give h = 0, 10, 20; β = 0.1 scales to 0, 1, 2.

    loss = -log σ(βh) = log(1 + e^{-βh}) = [log 2, log(1 + e^-1), log(1 + e^-2)] = [0.693147, 0.313262, 0.126928]
    rewards: chosen β·(0, 10, 0) = (0, 1, 0), rejected β·(0, 0, -20) = (0, 0, -2)
    """
    loss, chosen, rejected = _dpo([0.0, 10.0, 0.0], [0.0, 0.0, -20.0], beta=0.1)
    torch.testing.assert_close(loss, torch.tensor([0.693147, 0.313262, 0.126928]), atol=1e-6, rtol=0)
    torch.testing.assert_close(chosen, torch.tensor([0.0, 1.0, 0.0]))
    torch.testing.assert_close(rejected, torch.tensor([0.0, 0.0, -2.0]))


def test_dpo_label_smoothing_by_hand():
    """ε = 0.25, βh = 1: 0.75·log(1 + e^-1) + 0.25·log(1 + e^1) = 0.75·0.313262 + 0.25·1.313262 = 0.563262."""
    loss, _, _ = _dpo([10.0], [0.0], beta=0.1, label_smoothing=0.25)
    assert loss.item() == pytest.approx(0.563262, abs=1e-6)


def test_dpo_ipo_by_hand():
    """IPO: (h - 1/(2β))². β = 0.1 -> target 5; h = 10 -> 25, h = 0 -> 25, h = 5 -> 0, h = 7 -> 4."""
    loss, _, _ = _dpo([10.0, 0.0, 5.0, 7.0], [0.0, 0.0, 0.0, 0.0], beta=0.1, loss_type="ipo")
    torch.testing.assert_close(loss, torch.tensor([25.0, 25.0, 0.0, 4.0]))


def test_dpo_gradient_raises_chosen_and_lowers_rejected():
    """d/dπ_w of -log σ(β h) = -β σ(-β h) < 0: gradient descent raises log π(chosen) and lowers log π(rejected).

    At h = 0: dL/dπ_w = -β/2 = -0.05, dL/dπ_l = +0.05.
    """
    chosen = torch.tensor([-4.0], requires_grad=True)
    rejected = torch.tensor([-4.0], requires_grad=True)
    loss, _, _ = dpo_loss(chosen, rejected, torch.tensor([-4.0]), torch.tensor([-4.0]), beta=0.1)
    loss.sum().backward()
    assert chosen.grad.item() == pytest.approx(-0.05, abs=1e-7)
    assert rejected.grad.item() == pytest.approx(0.05, abs=1e-7)


def test_dpo_rejects_unknown_loss_type():
    with pytest.raises(ValueError, match="loss_type='hinge' is not one of sigmoid, ipo"):
        _dpo([0.0], [0.0], beta=0.1, loss_type="hinge")


# ---------------------------------------------------------------- GAE
from bench.losses import (
    aggregate,
    clip_fraction,
    clipped_surrogate,
    clipped_value_loss,
    gae,
    group_advantages,
    kl_k3,
    reinforce_pp_advantages,
    rloo_advantages,
    whiten,
)


def test_gae_three_steps_by_hand():
    """r = [1, 0, 2], V = [0.5, 1, 1.5], γ = 0.9, λ = 0.8 (γλ = 0.72), V after the end = 0.

    δ2 = 2 - 1.5 = 0.5;  δ1 = 0 + 0.9·1.5 - 1 = 0.35;  δ0 = 1 + 0.9·1 - 0.5 = 1.4
    A2 = 0.5;  A1 = 0.35 + 0.72·0.5 = 0.71;  A0 = 1.4 + 0.72·0.71 = 1.9112
    returns = A + V = [2.4112, 1.71, 2.0]
    """
    adv, ret = gae(torch.tensor([[1.0, 0.0, 2.0]]), torch.tensor([[0.5, 1.0, 1.5]]), torch.ones(1, 3), gamma=0.9, lam=0.8)
    torch.testing.assert_close(adv, torch.tensor([[1.9112, 0.71, 0.5]]))
    torch.testing.assert_close(ret, torch.tensor([[2.4112, 1.71, 2.0]]))


def test_gae_with_gamma_lambda_one_is_reward_to_go_minus_value():
    """γ = λ = 1: A_t = Σ_{k≥t} r_k - V_t = [3, 2, 2] - [0.5, 1, 1.5] = [2.5, 1, 0.5]."""
    adv, _ = gae(torch.tensor([[1.0, 0.0, 2.0]]), torch.tensor([[0.5, 1.0, 1.5]]), torch.ones(1, 3), gamma=1.0, lam=1.0)
    torch.testing.assert_close(adv, torch.tensor([[2.5, 1.0, 0.5]]))


def test_gae_ignores_whatever_sits_at_masked_positions():
    """Noise in rewards and values after the end of a sequence changes nothing (verl's invariance test)."""
    torch.manual_seed(0)
    rewards, values = torch.randn(4, 6), torch.randn(4, 6)
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0], [1, 0, 0, 0, 0, 0], [1, 1, 1, 1, 1, 0]]).float()
    adv, ret = gae(rewards, values, mask, 0.99, 0.95)
    noisy_r = torch.where(mask.bool(), rewards, torch.randn(4, 6) * 100)
    noisy_v = torch.where(mask.bool(), values, torch.randn(4, 6) * 100)
    adv2, ret2 = gae(noisy_r, noisy_v, mask, 0.99, 0.95)
    torch.testing.assert_close(adv, adv2)
    torch.testing.assert_close(ret, ret2)
    assert (adv[~mask.bool()] == 0).all()
    # and a short sequence equals the same sequence computed on its own, unpadded
    alone, _ = gae(rewards[1:2, :3], values[1:2, :3], torch.ones(1, 3), 0.99, 0.95)
    torch.testing.assert_close(adv[1:2, :3], alone)


def test_whiten_gives_zero_mean_unit_std_over_the_mask():
    x = torch.tensor([[1.0, 2.0, 3.0], [4.0, 99.0, 99.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    w = whiten(x, mask)
    vals = w[mask.bool()]
    assert vals.mean().item() == pytest.approx(0.0, abs=1e-6)
    assert vals.std().item() == pytest.approx(1.0, abs=1e-4)
    assert (w[~mask.bool()] == 0).all()


# ---------------------------------------------------------------- group advantages
def test_group_advantages_by_hand():
    """Groups (G = 3) [1, 2, 3] and [5, 5, 5]: means 2 and 5, Bessel stds 1 and 0.

    group: [-1, 0, 1] / (1 + eps) and zeros (equal rewards: 0 / eps, not NaN)
    batch: std of all six = sqrt(15.5 / 5) = 1.760682 -> [-1, 0, 1, 0, 0, 0] / 1.760682
    none:  [-1, 0, 1, 0, 0, 0]
    """
    r = torch.tensor([1.0, 2.0, 3.0, 5.0, 5.0, 5.0])
    eps = 1e-4
    torch.testing.assert_close(group_advantages(r, 3, "group", eps), torch.tensor([-1, 0, 1, 0, 0, 0.0]) / torch.tensor([1 + eps] * 3 + [1.0] * 3))
    torch.testing.assert_close(group_advantages(r, 3, "batch", eps), torch.tensor([-1, 0, 1, 0, 0, 0.0]) / (1.760682 + eps))
    torch.testing.assert_close(group_advantages(r, 3, "none"), torch.tensor([-1, 0, 1, 0, 0, 0.0]))
    assert not group_advantages(torch.full((4,), 0.7), 2).isnan().any()


def test_group_advantages_vectorised_equals_a_plain_loop():
    torch.manual_seed(1)
    r, G = torch.randn(5 * 4), 4
    loop = []
    for i in range(0, len(r), G):
        g = r[i : i + G]
        loop += ((g - g.mean()) / (g.std() + 1e-4)).tolist()
    torch.testing.assert_close(group_advantages(r, G), torch.tensor(loop))


def test_group_advantages_rejects_bad_layouts():
    with pytest.raises(ValueError, match="group_size must be >= 2"):
        group_advantages(torch.zeros(4), 1)
    with pytest.raises(ValueError, match="multiple of group_size 3"):
        group_advantages(torch.zeros(4), 3)


# ---------------------------------------------------------------- RLOO and REINFORCE++ advantages
def test_rloo_advantages_by_hand():
    """k = 4, rewards [1, 0, 0, 1]: the others' means are [1/3, 2/3, 2/3, 1/3], so A = [2/3, -2/3, -2/3, 2/3]."""
    torch.testing.assert_close(rloo_advantages(torch.tensor([1.0, 0.0, 0.0, 1.0]), 4), torch.tensor([0.666667, -0.666667, -0.666667, 0.666667]))


def test_rloo_advantages_are_zero_for_a_constant_group_and_sum_to_zero_per_group():
    torch.testing.assert_close(rloo_advantages(torch.full((6,), 0.3), 3), torch.zeros(6))
    torch.manual_seed(0)
    a = rloo_advantages(torch.randn(5 * 4), 4)
    torch.testing.assert_close(a.view(5, 4).sum(-1), torch.zeros(5), atol=1e-6, rtol=0)


def test_rloo_advantages_are_k_over_k_minus_1_times_the_centred_rewards():
    torch.manual_seed(1)
    r = torch.randn(3 * 5)
    torch.testing.assert_close(rloo_advantages(r, 5), 5 / 4 * group_advantages(r, 5, "none"))
    with pytest.raises(ValueError, match="group_size must be >= 2"):
        rloo_advantages(r, 1)


def test_reinforce_pp_advantages_by_hand():
    """Rows [0, 0, 1] and [0.5, 2, pad]: reward-to-go [1, 1, 1] and [2.5, 2, 0]. Over the five unmasked
    returns the mean is 1.5 and the Bessel variance (0.25·3 + 1 + 0.25) / 4 = 0.5, so the advantages are
    [-1/√2, -1/√2, -1/√2] and [√2, 1/√2, 0]; the 99 at the padded position never enters."""
    rewards = torch.tensor([[0.0, 0.0, 1.0], [0.5, 2.0, 99.0]])
    mask = torch.tensor([[1.0, 1, 1], [1, 1, 0]])
    h = 2**-0.5
    torch.testing.assert_close(reinforce_pp_advantages(rewards, mask), torch.tensor([[-h, -h, -h], [2 * h, h, 0.0]]))


def test_reinforce_pp_baseline_variant_on_groups_of_uneven_lengths():
    """k = 2, groups {row 0, row 1} and {row 2, row 3} of 3, 2, 1 and 3 tokens. Returns-to-go
    [1 1 1], [3 3 -], [2 - -], [0 0 0]; totals 1, 3 | 2, 0; group means 2 | 1. Centred: [-1 -1 -1],
    [1 1 -], [1 - -], [-1 -1 -1]: nine values of mean -1/3 and Bessel variance 8 / 8 = 1, so the
    whitened advantages are -1 -> -2/3 and 1 -> 4/3."""
    rewards = torch.tensor([[0.0, 0.0, 1.0], [0.0, 3.0, 99.0], [2.0, 99.0, 99.0], [0.0, 0.0, 0.0]])
    mask = torch.tensor([[1.0, 1, 1], [1, 1, 0], [1, 0, 0], [1, 1, 1]])
    lo, hi = -2 / 3, 4 / 3
    expected = torch.tensor([[lo, lo, lo], [hi, hi, 0.0], [hi, 0.0, 0.0], [lo, lo, lo]])
    torch.testing.assert_close(reinforce_pp_advantages(rewards, mask, group_size=2), expected)
    assert not torch.allclose(reinforce_pp_advantages(rewards, mask), expected)  # the group baseline did something


# ---------------------------------------------------------------- KL
def test_k3_is_nonnegative_and_zero_at_equal_logps():
    torch.manual_seed(0)
    logp, logp_ref = torch.randn(1000) - 2, torch.randn(1000) - 2
    assert (kl_k3(logp, logp_ref) >= 0).all()
    assert kl_k3(logp, logp).abs().max() == 0


def test_k3_mean_over_samples_from_pi_approaches_the_true_kl():
    """p = [.5, .3, .2], q = [.2, .5, .3]: KL(p‖q) = .5 ln 2.5 + .3 ln .6 + .2 ln(2/3) = 0.223804."""
    p, q = torch.tensor([0.5, 0.3, 0.2]), torch.tensor([0.2, 0.5, 0.3])
    x = torch.multinomial(p, 200_000, replacement=True, generator=torch.Generator().manual_seed(0))
    estimate = kl_k3(p.log()[x], q.log()[x]).mean().item()
    assert estimate == pytest.approx(0.223804, abs=0.005)


# ---------------------------------------------------------------- clipped surrogate, clip fraction
def test_clipped_surrogate_by_hand():
    """ε = 0.2. ratio 1.5, A = +1: max(-1.5, -1.2) = -1.2 (clipped); A = -1: max(1.5, 1.2) = 1.5.
    ratio 0.5, A = +1: max(-0.5, -0.8) = -0.5; A = -1: max(0.5, 0.8) = 0.8 (clipped).
    """
    logp = torch.tensor([[1.5, 1.5, 0.5, 0.5]]).log().requires_grad_()
    adv = torch.tensor([[1.0, -1.0, 1.0, -1.0]])
    loss = clipped_surrogate(logp, torch.zeros(1, 4), adv, 0.2, 0.2)
    torch.testing.assert_close(loss, torch.tensor([[-1.2, 1.5, -0.5, 0.8]]))
    loss.sum().backward()
    # clipped tokens get no gradient; the others d(-A·ρ)/dlogp = -A·ρ
    torch.testing.assert_close(logp.grad, torch.tensor([[0.0, 1.5, -0.5, 0.0]]))
    assert clip_fraction(logp, torch.zeros(1, 4), adv, torch.ones(1, 4), 0.2, 0.2).item() == 0.5
    # DAPO clip-higher: ε_high = 0.6 lets ratio 1.5 through
    assert clipped_surrogate(logp, torch.zeros(1, 4), adv, 0.2, 0.6)[0, 0].item() == pytest.approx(-1.5)
    # masked tokens do not count toward the clip fraction
    assert clip_fraction(logp, torch.zeros(1, 4), adv, torch.tensor([[1.0, 1.0, 0.0, 0.0]]), 0.2, 0.2).item() == 0.5


def test_sequence_advantages_broadcast_over_tokens():
    logp = torch.randn(2, 3)
    per_seq = clipped_surrogate(logp, logp, torch.tensor([2.0, -1.0]), 0.2, 0.2)
    torch.testing.assert_close(per_seq, torch.tensor([[-2.0] * 3, [1.0] * 3]))


def test_clipped_value_loss_by_hand():
    """V = 2, V_old = 1, R = 3, ε_v = 0.5: clipped V = 1.5; 0.5·max((2-3)², (1.5-3)²) = 0.5·2.25 = 1.125."""
    loss = clipped_value_loss(torch.tensor([[2.0]]), torch.tensor([[1.0]]), torch.tensor([[3.0]]), 0.5)
    assert loss.item() == pytest.approx(1.125)


# ---------------------------------------------------------------- aggregation
def test_aggregate_three_ways_by_hand():
    """Per-token [[1, 2, 3], [4, ·, ·]] (second sequence 1 token long; · is padding, value 100).

    seq_mean:   mean(2, 4) = 3
    token_mean: (1 + 2 + 3 + 4) / 4 = 2.5
    constant:   10 / (2 · 3) = 1.6667; with max_len 5: 10 / 10 = 1
    """
    x = torch.tensor([[1.0, 2.0, 3.0], [4.0, 100.0, 100.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    assert aggregate(x, mask, "seq_mean").item() == pytest.approx(3.0)
    assert aggregate(x, mask, "token_mean").item() == pytest.approx(2.5)
    assert aggregate(x, mask, "constant").item() == pytest.approx(10 / 6)
    assert aggregate(x, mask, "constant", max_len=5).item() == pytest.approx(1.0)


def test_padding_does_not_change_masked_means():
    x, mask = torch.randn(3, 4), torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]]).float()
    padded_x, padded_mask = torch.cat([x, torch.randn(3, 5)], 1), torch.cat([mask, torch.zeros(3, 5)], 1)
    for mode in ("seq_mean", "token_mean"):
        torch.testing.assert_close(aggregate(x, mask, mode), aggregate(padded_x, padded_mask, mode))
    torch.testing.assert_close(aggregate(x, mask, "constant", max_len=8), aggregate(padded_x, padded_mask, "constant", max_len=8))
    with pytest.raises(ValueError, match="mode='sum' is not one of seq_mean, token_mean, constant"):
        aggregate(x, mask, "sum")
