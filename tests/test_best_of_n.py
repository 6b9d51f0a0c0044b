"""Best-of-N: its KL (the analytic upper bound and the estimate from the candidates) against exact sums and
sampling, the policy's estimate on a model, its cost per step, and its curve in N on the preference task."""

import json
import math
from itertools import pairwise

import pytest
import torch

from bench.algos.best_of_n import BestOfNConfig, BestOfNPolicy, resolve_prompts_per_step
from bench.config import ConfigError, ModelConfig
from bench.losses import best_of_n_kl, best_of_n_kl_estimate
from bench.models import build_policy, build_tokenizer
from bench.rollout import encode_prompts
from bench.tasks.arithmetic import Arithmetic, ArithmeticConfig


def _best_of_n_exact(pi: torch.Tensor, rewards: torch.Tensor, n: int) -> torch.Tensor:
    """The best-of-n distribution of a categorical π: P(best = x) = F(x)^n - F(x⁻)^n, F the CDF in reward order
    (outcomes of equal reward share their class's mass in proportion to π)."""
    q = torch.zeros_like(pi)
    for r in rewards.unique():
        below, within = pi[rewards < r].sum(), rewards == r
        q[within] = ((below + pi[within].sum()) ** n - below**n) * pi[within] / pi[within].sum()
    return q


def _kl(q: torch.Tensor, pi: torch.Tensor) -> float:
    return torch.where(q > 0, q * (q / pi).log(), 0.0).sum().item()


@pytest.mark.parametrize("n", [1, 2, 4, 16])
def test_best_of_n_kl_matches_a_monte_carlo_estimate_on_a_categorical_toy(n):
    """400 outcomes, distinct rewards: draw n samples from π 200 000 times, keep the best, and estimate
    KL(best-of-n ‖ π) as the mean of log q̂(x) - log π(x) over the kept draws (q̂ their frequencies).
    log n - (n - 1)/n is exact in the continuous limit; here the estimate (bias ≈ 400 / 400 000) lands within 0.02.
    No outcome holds much mass, so n candidates are (nearly) all distinct and the estimate from them is the bound too."""
    g = torch.Generator().manual_seed(n)
    pi = torch.distributions.Dirichlet(torch.full((400,), 20.0)).sample()  # no outcome holds much mass
    rewards = torch.randperm(400, generator=g).double()
    draws = torch.multinomial(pi.expand(200_000, -1), n, replacement=True, generator=g)  # [M, n]
    best = draws.gather(1, rewards[draws].argmax(1, keepdim=True)).squeeze(1)  # [M]
    q_hat = torch.bincount(best, minlength=400).double() / len(best)
    monte_carlo = (q_hat[best].log() - pi.double()[best].log()).mean().item()
    assert monte_carlo == pytest.approx(best_of_n_kl(n), abs=0.02)
    q = _best_of_n_exact(pi.double(), rewards, n)
    exact = _kl(q, pi.double())
    assert exact == pytest.approx(best_of_n_kl(n), abs=0.01)  # the estimator agrees with the exact sum too
    for row in draws[:20]:
        seen = row.unique()
        assert best_of_n_kl_estimate(pi.double()[seen], rewards[seen], n) == pytest.approx(exact, abs=0.01)


def test_best_of_n_kl_is_an_upper_bound_when_rewards_tie():
    """A 0/1 check (a verifiable task): best-of-n moves mass only between the two classes, so its KL is the
    KL of two Bernoullis, below log n - (n - 1)/n. The estimate from all four outcomes, tied scores and all,
    is that exact KL: a tie contributes P log(P / Q) of its class, whatever the split inside it."""
    pi, rewards = torch.tensor([0.3, 0.2, 0.1, 0.4], dtype=torch.float64), torch.tensor([0.0, 1.0, 0.0, 1.0], dtype=torch.float64)
    for n in (2, 4, 8):
        q = _best_of_n_exact(pi, rewards, n)
        p_right, q_right = 0.6, 1 - 0.4**n
        bernoulli = q_right * math.log(q_right / p_right) + (1 - q_right) * math.log((1 - q_right) / (1 - p_right))
        assert _kl(q, pi) == pytest.approx(bernoulli)
        assert bernoulli < best_of_n_kl(n)
        assert best_of_n_kl_estimate(pi, rewards, n) == pytest.approx(bernoulli, rel=1e-9)
    assert best_of_n_kl(1) == 0.0
    with pytest.raises(ValueError, match="n must be >= 1"):
        best_of_n_kl(0)
    with pytest.raises(ValueError, match="n must be >= 1"):
        best_of_n_kl_estimate(pi, rewards, 0)


def test_best_of_n_kl_estimate_by_hand():
    """Quantile space u ∈ [0, 1], outcomes in score order; best-of-n has density n u^(n-1) there.

    p = (0.05, 0.05, 0.9), the 0.9 outcome the best, fully observed, n = 128: the atoms [0, .05], [.05, .1],
    [.1, 1] get π_N = .05^128, .1^128 - .05^128 (both < 1e-127) and 1 - .1^128, so
    KL = 1 · log(1 / 0.9) = 0.105361, against the bound log 128 - 127/128 = 3.859843.

    One atom of mass ½ seen, ½ unseen, n = 2: the unseen half is continuous, ¼ in each gap, the atom on [¼, ¾]
    with π_N = 9/16 - 1/16 = ½ = q (no KL). The gaps give log 2 (d² - c²) + [u² log u - u²/2]_c^d:
    [0, ¼]: log 2 / 16 + (log ¼ - ½)/16 = 0.043322 - 0.117894 = -0.074572;
    [¾, 1]: 7 log 2 / 16 + (-½ - (9/16)(log ¾ - ½)) = 0.303254 - 0.056931 = 0.246323; total 0.171752 < 0.193147.
    """
    f64 = {"dtype": torch.float64}
    assert best_of_n_kl_estimate(torch.tensor([0.05, 0.05, 0.9], **f64), torch.tensor([0.0, 1.0, 2.0]), 128) == pytest.approx(0.105361, abs=1e-6)
    assert best_of_n_kl(128) == pytest.approx(3.859843, abs=1e-6)
    assert best_of_n_kl_estimate(torch.tensor([0.5], **f64), torch.tensor([0.0]), 2) == pytest.approx(0.171752, abs=1e-6)
    # the order of the inputs does not matter, and tied scores are one atom of their summed mass
    masses, scores = torch.tensor([0.1, 0.3, 0.2], **f64), torch.tensor([2.0, 0.5, 2.0])
    value = best_of_n_kl_estimate(masses, scores, 8)
    assert best_of_n_kl_estimate(masses.flip(0), scores.flip(0), 8) == pytest.approx(value, rel=1e-12)
    assert best_of_n_kl_estimate(torch.tensor([0.3, 0.3], **f64), torch.tensor([0.5, 2.0]), 8) == pytest.approx(value, rel=1e-12)
    # n = 1 is π itself; candidates of negligible mass (all distinct) leave a continuous π: the bound
    assert best_of_n_kl_estimate(masses, scores, 1) == pytest.approx(0.0, abs=1e-12)
    for n in (2, 16, 1000):
        tiny = torch.full((n,), 1e-12, **f64)
        assert best_of_n_kl_estimate(tiny, torch.randn(n), n) == pytest.approx(best_of_n_kl(n), abs=1e-8)
    # masses that sum past 1 (log-probs under reduced precision) are a distribution once rescaled
    assert best_of_n_kl_estimate(torch.tensor([0.1, 0.3, 0.2], **f64) * 2, scores, 8) == pytest.approx(
        best_of_n_kl_estimate(torch.tensor([1 / 6, 1 / 2, 1 / 3], **f64), scores, 8), rel=1e-12)  # fmt: skip


@pytest.mark.parametrize(("n", "tolerance"), [(4, 0.015), (16, 0.05), (64, 0.15)])
def test_best_of_n_kl_estimate_with_duplicates_against_sampling(n, tolerance):
    """8 outcomes, three of them holding 3/4 of the mass, the best one 0.15: n candidates repeat outcomes.

    Exact KL(best-of-n ‖ π) (the sum over outcomes) and a Monte-Carlo estimate from 200 000 best-of-n draws
    agree (within 0.005); it saturates at -log 0.15 = 1.897 as n grows (1.6172 at n = 16, 1.8968 at 64), while
    the bound log n - (n - 1)/n keeps growing (0.6363, 1.8351, 3.1745 at n = 4, 16, 64). The estimate from each
    draw's distinct candidates, averaged over 4 000 draws, lies within `tolerance` of the exact KL, less than a
    third of the bound's error (0.06, 0.22, 1.28); measured 0.5876, 1.6541, 2.0182: above the exact value,
    the unseen mass being spread tie-free and partly above the best candidate. Every single estimate is at most
    the bound, and equals the exact KL where a draw saw all 8 outcomes."""
    pi = torch.tensor([0.4, 0.2, 0.15, 0.1, 0.05, 0.04, 0.03, 0.03], dtype=torch.float64)
    rewards = torch.tensor([4.0, 0.0, 7.0, 3.0, 2.0, 5.0, 1.0, 6.0], dtype=torch.float64)  # outcome 2 (0.15) is the best
    exact = _kl(_best_of_n_exact(pi, rewards, n), pi)
    g = torch.Generator().manual_seed(n)
    draws = torch.multinomial(pi.expand(200_000, -1), n, replacement=True, generator=g)  # [M, n]
    best = draws.gather(1, rewards[draws].argmax(1, keepdim=True)).squeeze(1)  # [M]
    q_hat = torch.bincount(best, minlength=8).double() / len(best)
    assert (q_hat[best].log() - pi[best].log()).mean().item() == pytest.approx(exact, abs=0.005)

    estimates = torch.tensor([best_of_n_kl_estimate(pi[row.unique()], rewards[row.unique()], n) for row in draws[:4000]], dtype=torch.float64)
    assert estimates.mean().item() == pytest.approx(exact, abs=tolerance)
    assert tolerance < (best_of_n_kl(n) - exact) / 3
    assert (estimates <= best_of_n_kl(n) + 1e-9).all()
    complete = torch.tensor([len(row.unique()) == 8 for row in draws[:4000]])
    if n == 64:
        assert complete.sum() > 2000
        torch.testing.assert_close(estimates[complete], torch.full((int(complete.sum()),), exact, dtype=torch.float64), rtol=1e-9, atol=0)


VOCAB = Arithmetic(ArithmeticConfig(name="arithmetic")).vocabulary
PROMPTS = ["4 7 + 3 8 =", "7 + 3 =", "1 2 + 3 4 =", "9 + 9 9 ="]
WEIGHTS = torch.tensor([1.0, 0.37, 0.11, 0.029, 0.0071, 0.0013])


def _model():
    torch.manual_seed(0)
    cfg = ModelConfig(preset="tiny")
    tok = build_tokenizer(cfg, VOCAB)
    return build_policy(cfg, tok).eval(), tok


def _score(batch):
    """A reward of the token ids alone (identical texts score alike): a weighted sum over positions, [B]."""
    ids = batch.input_ids[:, batch.prompt_len :] * batch.completion_mask
    return ids @ WEIGHTS[: ids.shape[1]]


def _drawn(policy: BestOfNPolicy, n: int, max_new_tokens: int, temperature: float = 1.0):
    policy.n = n
    torch.manual_seed(5)  # the evaluator's stream: the same batch key at every N
    batch = policy.sample(PROMPTS, max_new_tokens, temperature)
    return batch, policy.kl_to_ref(batch)


def test_the_policys_estimate_on_one_token_completions_is_the_exact_kl_of_its_model():
    """One-token completions: π_sft's outcomes are its next-token distribution over the V = 16 tokens (nearly
    uniform at initialisation), scored by token id. 256 candidates miss a token with probability about
    (1 - 1/16)^256 = 7e-8, so the estimate is the exact KL of best-of-256 over that distribution,
    -log π(the top-scored token) ≈ 2.9 (each π ≈ 1/16), far below the bound log 256 - 255/256 = 4.55. N = 1 is π_sft: 0."""
    model, tok = _model()
    policy = BestOfNPolicy(model, lambda b: b.input_ids[:, b.prompt_len].float(), tok)
    ids, mask = encode_prompts(tok, PROMPTS, "cpu")
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=mask, position_ids=(mask.cumsum(-1) - 1).clamp(min=0)).logits[:, -1]
    pi = logits.double().softmax(-1)  # [B, V]
    assert pi.shape[1] == 16
    exact = torch.tensor([_kl(_best_of_n_exact(p, torch.arange(16).double(), 256), p) for p in pi], dtype=torch.float64)
    assert ((2.8 < exact) & (exact < 3.2)).all()
    # N = 1: 0 up to the rounding of the estimate's expm1/log1p, which CPUs of other kinds vectorise differently
    # (1.4e-17 on one prompt on an AMX Xeon, exactly 0 on the kind that ran the release)
    torch.testing.assert_close(_drawn(policy, 1, 1)[1], torch.zeros(len(PROMPTS), dtype=torch.float64), atol=1e-15, rtol=0)
    torch.testing.assert_close(_drawn(policy, 256, 1)[1], exact, atol=1e-4, rtol=0)


def test_the_policy_extends_its_candidates_to_the_estimate_of_drawing_them_at_once():
    """N = 1, 2, ..., 8 on one batch key draws each candidate once and gives, at 8, the completions and KL of a
    policy that drew its 8 at once; every estimate lies in [0, log N - (N - 1)/N], N = 1 at 0. A batch the
    policy did not return has no estimate."""
    model, tok = _model()
    grown = BestOfNPolicy(model, _score, tok)
    for n in range(1, 9):
        batch, kl = _drawn(grown, n, 4)
        assert ((0 <= kl) & (kl <= best_of_n_kl(n) + 1e-9)).all(), (n, kl)
        if n == 1:
            torch.testing.assert_close(kl, torch.zeros_like(kl), atol=1e-15, rtol=0)  # rounding, as above
    at_once = BestOfNPolicy(model, _score, tok)
    other, kl_at_once = _drawn(at_once, 8, 4)
    assert other.completions == batch.completions
    torch.testing.assert_close(kl_at_once, kl)
    with pytest.raises(ValueError, match="returned"):
        grown.kl_to_ref(other)


def test_a_policy_that_repeats_one_text_has_no_best_of_n_kl():
    """At temperature 1e-5 π_sft draws its greedy text every time (probability ≈ 1; at 1e-3 the initialised
    model's near-tied logits still split two of the prompts between two texts): the 8 candidates are one
    outcome, merged by token ids, and best-of-8 of a point mass is that point mass: KL ≈ 0, where the formula
    says log 8 - 7/8 = 1.204."""
    model, tok = _model()
    _, kl = _drawn(BestOfNPolicy(model, _score, tok), 8, 4, temperature=1e-5)
    assert (kl < 1e-3).all(), kl
    assert best_of_n_kl(8) == pytest.approx(1.204, abs=1e-3)


def test_prompts_per_step_defaults_to_the_test_prompts_shared_among_processes():
    default, explicit = BestOfNConfig(), BestOfNConfig(prompts_per_step=16)
    assert resolve_prompts_per_step(default, n_eval=120, processes=1) == 120
    assert resolve_prompts_per_step(default, n_eval=512, processes=2) == 256  # 512 candidates a step in all
    assert resolve_prompts_per_step(explicit, n_eval=512, processes=2) == 16  # an explicit value is per process
    with pytest.raises(ConfigError, match="task.n_eval 63 is not divisible by 2 processes"):
        resolve_prompts_per_step(default, n_eval=63, processes=2)
    with pytest.raises(ConfigError, match="must be >= 1"):
        BestOfNConfig(prompts_per_step=0)


@pytest.mark.parametrize("n_eval", [16, 48])
def test_a_step_buys_one_more_candidate_for_each_test_prompt(run_tiny, n_eval):
    """By default a step draws task.n_eval candidates, so after k steps the budget bought k · n_eval samples:
    the N · n_eval candidates the evaluation at N draws on the test prompts."""
    summary, _ = run_tiny("algo=best_of_n", f"task.n_eval={n_eval}", "budget=steps", "budget.amount=3", name=f"n_eval_{n_eval}")
    assert summary["status"] == "finished", summary.get("error")
    assert summary["last_eval"]["compute/steps"] == 3
    assert summary["last_eval"]["compute/samples"] == 3 * n_eval
    assert summary["data"] == {"examples": n_eval, "epochs": 3.0}


def test_best_of_n_gold_reward_rises_with_n_on_the_preference_task(run_tiny):
    """One step per N (16 prompts, one candidate each), an evaluation after each, on fixed streams. A larger
    N's candidates contain the smaller N's, so the proxy reward of the kept samples can never fall; the gold
    reward, which the reward model only approximates, rises at every doubling of N from 1 to 32; the
    evaluator's KL, estimated from the candidates, is 0 at N = 1 and at most log N - (N - 1)/N, which the
    trainer reports as `train/kl_upper_bound`."""
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
    kl = [evals[n]["eval/kl_to_ref"] for n in sorted(evals)]
    assert kl[0] == pytest.approx(0.0, abs=1e-12)  # N = 1: π_sft itself
    assert all(0 <= k <= best_of_n_kl(n) + 1e-9 for n, k in zip(sorted(evals), kl))
    # the tiny SFT model's 8-token completions almost never repeat and each holds little mass: the estimate is the bound
    assert kl[-1] == pytest.approx(best_of_n_kl(32), abs=0.01)
    assert summary["data"] == {"examples": 16, "epochs": 32.0}
    train = [r for r in rows if "train/n" in r]
    assert [r["train/n"] for r in train] == list(range(1, 33))
    assert [r["train/kl_upper_bound"] for r in train] == [best_of_n_kl(n) for n in range(1, 33)]  # labelled as the bound
    assert "train/kl" not in train[0]
    assert all(b["train/reward"] >= a["train/reward"] for a, b in pairwise(train))  # its own prompts' best, too
