"""The simulated annotator: Bradley-Terry label frequencies and label noise."""

import torch

from bench.stages import bradley_terry_labels

N = 40_000
# 4 standard errors of a frequency near 0.5 at N draws: a failure is a real bias, not noise
TOL = 4 * (0.25 / N) ** 0.5


def _freq(diff: float, tau: float, noise: float, seed: int = 0) -> float:
    r_a = torch.full((N,), diff)
    labels = bradley_terry_labels(r_a, torch.zeros(N), tau, noise, torch.Generator().manual_seed(seed))
    return labels.float().mean().item()


def test_label_frequency_matches_bradley_terry():
    """P(a ≻ b) = σ(Δ/τ): Δ = 0.1, τ = 0.1 -> σ(1) = 0.731059; Δ = -0.2, τ = 0.5 -> σ(-0.4) = 0.401312; Δ = 0 -> 0.5."""
    assert abs(_freq(0.1, 0.1, 0.0) - 0.731059) < TOL
    assert abs(_freq(-0.2, 0.5, 0.0) - 0.401312) < TOL
    assert abs(_freq(0.0, 1.0, 0.0) - 0.5) < TOL


def test_label_noise_flips_the_expected_fraction():
    """Noise ε mixes: P = (1 - ε)·p + ε·(1 - p). A sure preference (p ≈ 1) with ε = 0.2 -> 0.8; p = 0.731, ε = 0.1 -> 0.684953."""
    assert abs(_freq(10.0, 0.1, 0.2) - 0.8) < TOL
    assert abs(_freq(0.1, 0.1, 0.1) - 0.684953) < TOL


def test_labels_are_reproducible_from_the_generator():
    assert _freq(0.05, 0.1, 0.1, seed=3) == _freq(0.05, 0.1, 0.1, seed=3)
