"""Best-of-N: its analytic KL against sampling, and its curve in N on the preference task."""

import json
import math
from itertools import pairwise

import pytest
import torch

from bench.losses import best_of_n_kl


def _best_of_n_exact(pi: torch.Tensor, rewards: torch.Tensor, n: int) -> torch.Tensor:
    """The best-of-n distribution of a categorical π: P(best = x) = F(x)^n - F(x⁻)^n, F the CDF in reward order
    (outcomes of equal reward share their class's mass in proportion to π)."""
    q = torch.zeros_like(pi)
    for r in rewards.unique():
        below, within = pi[rewards < r].sum(), rewards == r
        q[within] = ((below + pi[within].sum()) ** n - below**n) * pi[within] / pi[within].sum()
    return q


@pytest.mark.parametrize("n", [1, 2, 4, 16])
def test_best_of_n_kl_matches_a_monte_carlo_estimate_on_a_categorical_toy(n):
    """400 outcomes, distinct rewards: draw n samples from π 200 000 times, keep the best, and estimate
    KL(best-of-n ‖ π) as the mean of log q̂(x) - log π(x) over the kept draws (q̂ their frequencies).
    log n - (n - 1)/n is exact in the continuous limit; here the estimate (bias ≈ 400 / 400 000) lands within 0.02."""
    g = torch.Generator().manual_seed(n)
    pi = torch.distributions.Dirichlet(torch.full((400,), 20.0)).sample()  # no outcome holds much mass
    rewards = torch.randperm(400, generator=g).double()
    draws = torch.multinomial(pi.expand(200_000, -1), n, replacement=True, generator=g)  # [M, n]
    best = draws.gather(1, rewards[draws].argmax(1, keepdim=True)).squeeze(1)  # [M]
    q_hat = torch.bincount(best, minlength=400).double() / len(best)
    monte_carlo = (q_hat[best].log() - pi.double()[best].log()).mean().item()
    assert monte_carlo == pytest.approx(best_of_n_kl(n), abs=0.02)
    q = _best_of_n_exact(pi.double(), rewards, n)
    exact = (q * (q.log() - pi.double().log())).sum().item()
    assert exact == pytest.approx(best_of_n_kl(n), abs=0.01)  # the estimator agrees with the exact sum too


def test_best_of_n_kl_is_an_upper_bound_when_rewards_tie():
    """A 0/1 check (a verifiable task): best-of-n moves mass only between the two classes, so its KL is the
    KL of two Bernoullis, below log n - (n - 1)/n."""
    pi, rewards = torch.tensor([0.3, 0.2, 0.1, 0.4], dtype=torch.float64), torch.tensor([0.0, 1.0, 0.0, 1.0], dtype=torch.float64)
    for n in (2, 4, 8):
        q = _best_of_n_exact(pi, rewards, n)
        p_right, q_right = 0.6, 1 - 0.4**n
        bernoulli = q_right * math.log(q_right / p_right) + (1 - q_right) * math.log((1 - q_right) / (1 - p_right))
        assert (q * (q / pi).log()).sum().item() == pytest.approx(bernoulli)
        assert bernoulli < best_of_n_kl(n)
    assert best_of_n_kl(1) == 0.0
    with pytest.raises(ValueError, match="n must be >= 1"):
        best_of_n_kl(0)


def test_best_of_n_gold_reward_rises_with_n_on_the_preference_task(run_tiny):
    """One step per N (16 prompts, one candidate each), an evaluation after each, on fixed streams. A larger
    N's candidates contain the smaller N's, so the proxy reward of the kept samples can never fall; the gold
    reward, which the reward model only approximates, rises at every doubling of N from 1 to 32; the
    evaluator reports the analytic KL of each N."""
    summary, run_dir = run_tiny("algo=best_of_n", "task=sentiment", "budget=steps", "budget.amount=32", "budget.eval_every=0.03125",
                                "algo.prompts_per_step=16")  # fmt: skip
    assert summary["status"] == "finished", summary.get("error")
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    evals = {r["compute/steps"]: r for r in rows if "eval/gold_reward" in r and r["compute/steps"] > 0}  # N = steps
    assert sorted(evals) == list(range(1, 33))
    proxy = [evals[n]["eval/proxy_reward"] for n in sorted(evals)]
    assert all(b >= a - 1e-6 for a, b in pairwise(proxy))  # re-scored on the padded batch: float noise at most
    gold = [evals[n]["eval/gold_reward"] for n in (1, 2, 4, 8, 16, 32)]
    assert all(b >= a for a, b in pairwise(gold)), gold
    assert gold[-1] > gold[0] + 0.1
    for n, row in evals.items():
        assert row["eval/kl_to_ref"] == pytest.approx(best_of_n_kl(n))
    assert summary["data"] == {"examples": 16, "epochs": 32.0}
    train = [r for r in rows if "train/n" in r]
    assert [r["train/n"] for r in train] == list(range(1, 33))
    assert all(b["train/reward"] >= a["train/reward"] for a, b in pairwise(train))  # its own prompts' best, too
