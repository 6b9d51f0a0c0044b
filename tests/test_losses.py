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
