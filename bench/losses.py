"""Losses, advantages and KL estimators: pure functions on tensors, public API.

Shapes: B sequences, T completion tokens; `mask` is 1 on completion tokens and 0 on
padding. Nothing here reads a model or a config, so each function is tested against
hand-computed values in `tests/test_losses.py`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

DPO_LOSS_TYPES = ("sigmoid", "ipo")
ADVANTAGE_SCALES = ("group", "batch", "none")
AGGREGATIONS = ("seq_mean", "token_mean", "constant")


def _check(name: str, value: str, valid: tuple[str, ...]) -> None:
    if value not in valid:
        raise ValueError(f"{name}={value!r} is not one of {', '.join(valid)}")


def dpo_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    beta: float,
    loss_type: str = "sigmoid",
    label_smoothing: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-pair DPO loss (Rafailov et al. 2023) and the implicit rewards. All inputs [B], summed log-probs.

    h = (logp_w - logp_ref_w) - (logp_l - logp_ref_l)
    sigmoid: -(1 - ε) log σ(β h) - ε log σ(-β h)     (ε = label_smoothing: conservative DPO)
    ipo:     (h - 1 / (2β))²                         (Azar et al. 2023)
    rewards: β (logp - logp_ref), detached.
    """
    _check("loss_type", loss_type, DPO_LOSS_TYPES)
    chosen_logratios = policy_chosen_logps - ref_chosen_logps
    rejected_logratios = policy_rejected_logps - ref_rejected_logps
    h = chosen_logratios - rejected_logratios
    if loss_type == "sigmoid":
        loss = -(1 - label_smoothing) * F.logsigmoid(beta * h) - label_smoothing * F.logsigmoid(-beta * h)
    else:
        loss = (h - 1 / (2 * beta)) ** 2
    return loss, beta * chosen_logratios.detach(), beta * rejected_logratios.detach()


def group_advantages(rewards: torch.Tensor, group_size: int, scale: str = "group", eps: float = 1e-4) -> torch.Tensor:
    """GRPO advantages: reward minus its group's mean, divided by a std (or not: Dr. GRPO).

    Layout: rows i*G .. i*G+G-1 of `rewards` ([B*G]) are the G completions of prompt i.

        rewards  [r00 r01 r02 | r10 r11 r12]   G = 3, B = 2
                  prompt 0     prompt 1

    scale="group": (r - mean_g) / (std_g + eps); "batch": std over the whole batch;
    "none": r - mean_g. std is Bessel-corrected (torch.std). A group of equal rewards
    gets zeros, never NaN.
    """
    _check("scale", scale, ADVANTAGE_SCALES)
    grouped = _groups(rewards, group_size)  # [B, G]
    centred = (grouped - grouped.mean(-1, keepdim=True)).view(-1)  # [B*G]
    if scale == "group":
        return centred / (grouped.std(-1).repeat_interleave(group_size) + eps)
    if scale == "batch":
        return centred / (rewards.std() + eps)
    return centred


def _groups(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    """[B*G] rewards as [B, G], one prompt's group a row; a group needs two members for a baseline."""
    if group_size < 2:
        raise ValueError(f"group_size must be >= 2 for a group baseline, got {group_size}")
    if rewards.ndim != 1 or rewards.numel() % group_size:
        raise ValueError(f"rewards must be 1-D with a multiple of group_size {group_size} entries, got shape {tuple(rewards.shape)}")
    return rewards.view(-1, group_size)


def rloo_advantages(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    """RLOO advantages (Ahmadian et al. 2024): each reward minus the mean of the other k - 1 in its group.

    A_i = r_i - 1/(k-1) Σ_{j≠i} r_j = k/(k-1) · (r_i - mean_g r). Rows i*k .. i*k+k-1 of `rewards`
    ([B*k]) are prompt i's k completions, as for `group_advantages`. The baseline of each sample
    is independent of its own reward, so the estimator stays unbiased; a group's advantages sum to 0.
    """
    grouped = _groups(rewards, group_size)  # [B, k]
    others = (grouped.sum(-1, keepdim=True) - grouped) / (group_size - 1)  # [B, k]
    return (grouped - others).view(-1)


def token_rewards(scores: torch.Tensor, kl: torch.Tensor, mask: torch.Tensor, beta: float) -> torch.Tensor:
    """Per-token rewards of PPO and REINFORCE++, [B, T]: -β·kl_t at every completion token, the
    sequence's score ([B]) added on its last one. `kl` [B, T] is log π_old - log π_ref, 0 where masked."""
    rewards = -beta * kl
    last = mask.sum(-1).long() - 1  # [B]
    rewards[torch.arange(len(scores), device=scores.device), last] += scores
    return rewards


def reinforce_pp_advantages(token_rewards: torch.Tensor, mask: torch.Tensor, group_size: int | None = None) -> torch.Tensor:
    """REINFORCE++ advantages (Hu 2025): per-token reward-to-go (γ = 1), whitened over the whole batch. [B, T]

    token_rewards [B, T]: PPO's per-token rewards (KL penalty everywhere, the score on the last token).
    G_t = Σ_{s>=t} r_s, then (G - mean) / std over the masked tokens of the batch (`whiten`);
    masked positions are 0 and do not enter the statistics.
    group_size (the `baseline` variant, rows i*k .. i*k+k-1 one prompt's group): each sequence's
    returns first lose its group's mean total return Σ_t r_t (OpenRLHF's reinforce_baseline takes
    the group mean of the score; the KL penalties' group mean is subtracted here too, so the
    baseline is the group's mean of the very return being centred), then the batch whitening.
    """
    rewards = token_rewards * mask
    returns = rewards.flip(-1).cumsum(-1).flip(-1) * mask  # [B, T]: G_t
    if group_size is not None:
        totals = _groups(returns[:, 0], group_size)  # [B/k, k]: G_0, the whole sequence's return (completions start at 0)
        returns = (returns - totals.mean(-1).repeat_interleave(group_size)[:, None]) * mask
    return whiten(returns, mask)


def gae(
    rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation (Schulman et al. 2016) over [B, T] token sequences.

    δ_t = r_t + γ V_{t+1} - V_t,  A_t = δ_t + γλ A_{t+1}; the value after a sequence's last
    token is 0 (the episode ends). Values and rewards at masked positions are ignored.
    Returns (advantages, returns = advantages + values), both 0 at masked positions.
    """
    rewards, values = rewards * mask, values * mask
    T = rewards.shape[1]
    advantages = torch.zeros_like(rewards)
    next_adv = torch.zeros_like(rewards[:, 0])
    next_value = torch.zeros_like(values[:, 0])
    for t in reversed(range(T)):
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        next_adv = delta + gamma * lam * next_adv
        advantages[:, t] = next_adv
        next_value = values[:, t]
    advantages = advantages * mask
    return advantages, (advantages + values) * mask


def whiten(x: torch.Tensor, mask: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """(x - mean) / std over the masked entries (PPO's advantage whitening)."""
    n = mask.sum()
    mean = (x * mask).sum() / n
    var = (((x - mean) * mask) ** 2).sum() / (n - 1).clamp(min=1)  # Bessel-corrected
    return (x - mean) * torch.rsqrt(var + eps) * mask


def best_of_n_kl(n: int) -> float:
    """The upper bound on KL(π_N ‖ π) of best-of-n sampling from π: log n - (n - 1) / n (Stiennon et al. 2020,
    Gao et al. 2022; Beirami et al. 2024, Theorem 1, prove it bounds every π and reward).

    Exact only when n samples never tie in reward (a continuous distribution). With repeated samples (a
    peaked π, short completions: identical texts get identical scores) or a tied check (correct/incorrect)
    the KL is lower, e.g. at most -log π(y*) however large n grows: `best_of_n_kl_estimate` estimates it.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    return math.log(n) - (n - 1) / n


def best_of_n_kl_estimate(masses: torch.Tensor, scores: torch.Tensor, n: int) -> float:
    """KL(π_N ‖ π) of best-of-n sampling from π on one prompt, estimated from its distinct candidates.

    `masses`: [m] π's exact probability of each distinct candidate (exp Σ_t log π, duplicates merged by the
    caller: identical token ids are one outcome); `scores`: [m] the reward that selects among them.

    Derivation (Beirami et al. 2024, "Theoretical guarantees on the best-of-n alignment policy", Lemma 1):
    with outcomes ordered by score, F the CDF and F⁻ the strict CDF, π_N(y) = F(y)^n - F⁻(y)^n. In quantile
    space u ∈ [0, 1] best-of-n is the largest of n uniforms (density n u^(n-1)): an atom of mass q on
    [a, a + q] gets π_N = (a + q)^n - a^n, and mass with no atoms on [c, d] contributes
    ∫_c^d n u^(n-1) log(n u^(n-1)) du = log n (d^n - c^n) + (n - 1) [u^n log u - u^n / n]_c^d.

    The estimate is that KL, computed exactly, for p̂: the candidates as atoms of their exact masses (tied
    scores are one atom of their summed mass: best-of-n picks within a tie in proportion to mass, so the
    tie contributes P log(P / Q) whatever its split), and the unseen mass U = max(0, 1 - Σ q) as continuous
    mass spread equally over the m + 1 gaps below, between and above the atoms. So: n = 1 gives 0; Σ q → 0
    (all candidates distinct, negligible mass) gives the bound `best_of_n_kl(n)`; Σ q = 1 (every outcome
    seen) gives the exact discrete KL; and, p̂ being a distribution, always 0 ≤ estimate ≤ the bound. Where
    Σ q > 1 (log-probs under reduced precision) the masses are rescaled to sum to 1. While mass is unseen the
    estimate runs high: the share placed above the best candidate is what best-of-n favours most
    (`tests/test_best_of_n.py` measures it on a categorical with duplicates: +0.012 at n = 4, +0.12 at 64,
    against the bound's +0.06 and +1.28).
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    q, s = masses.detach().double().flatten().clamp(min=0).cpu(), scores.detach().double().flatten().cpu()
    if q.sum() > 1:
        q = q / q.sum()
    order = torch.argsort(s, stable=True)
    levels, tie = torch.unique_consecutive(s[order], return_inverse=True)
    Q = torch.zeros(len(levels), dtype=torch.float64).index_add_(0, tie, q[order])  # [m] mass of each score, ascending
    m = len(Q)
    gap = (1 - Q.sum()).clamp(min=0) / (m + 1)  # unseen mass in each of the m + 1 gaps
    below = torch.cat([Q.new_zeros(1), Q.cumsum(0)])  # [m + 1] atoms' mass below gap j (and below atom j)
    a = below[:m] + gap * torch.arange(1, m + 1)  # [m] where atom j starts
    top = (a + Q).clamp(max=1)
    # (a + Q)^n - a^n = (a + Q)^n (1 - (1 + Q/a)^-n), without cancelling when both are near 1; a = 0 gives Q^n
    ratio = torch.where(Q > 0, Q / a, 0.0)
    pi = top**n * -torch.expm1(-n * torch.log1p(ratio))  # [m] π_N of each atom
    atoms = torch.where(pi > 0, pi * (pi / Q).log(), 0.0).sum()
    c = (below + gap * torch.arange(m + 1)).clamp(max=1)  # [m + 1] continuous segments [c, c + gap]
    d = (c + gap).clamp(max=1)

    def h(u: torch.Tensor) -> torch.Tensor:  # u^n log u - u^n / n, 0 at u = 0
        return torch.where(u > 0, u**n * (u.log() - 1 / n), 0.0)

    continuous = (math.log(n) * (d**n - c**n) + (n - 1) * (h(d) - h(c))).sum()
    return max(0.0, (atoms + continuous).item())


def kl_k3(logp: torch.Tensor, logp_ref: torch.Tensor) -> torch.Tensor:
    """Per-token k3 estimator of KL(π || π_ref) on samples from π (Schulman 2020): ≥ 0, unbiased.

    exp(logp_ref - logp) - (logp_ref - logp) - 1
    """
    log_ratio = logp_ref - logp
    return torch.exp(log_ratio) - log_ratio - 1


def clipped_surrogate(
    logp: torch.Tensor, logp_old: torch.Tensor, advantages: torch.Tensor, eps_low: float, eps_high: float
) -> torch.Tensor:
    """Per-token PPO clipped surrogate loss, [B, T] (to be minimised).

    max(-A ρ, -A clip(ρ, 1 - ε_low, 1 + ε_high)),  ρ = exp(logp - logp_old).
    `advantages` is [B] (one per sequence, broadcast over tokens: GRPO) or [B, T] (PPO).
    ε_low ≠ ε_high is DAPO's clip-higher.
    """
    if advantages.ndim == 1:
        advantages = advantages[:, None]
    ratio = torch.exp(logp - logp_old)
    return torch.maximum(-advantages * ratio, -advantages * ratio.clamp(1 - eps_low, 1 + eps_high))


def clip_fraction(
    logp: torch.Tensor, logp_old: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor, eps_low: float, eps_high: float
) -> torch.Tensor:
    """Share of completion tokens whose gradient the clip removed (the clipped term was the max)."""
    if advantages.ndim == 1:
        advantages = advantages[:, None]
    ratio = torch.exp(logp - logp_old)
    clipped = ((ratio > 1 + eps_high) & (advantages > 0)) | ((ratio < 1 - eps_low) & (advantages < 0))
    return (clipped.float() * mask).sum() / mask.sum().clamp(min=1)


def clipped_value_loss(
    values: torch.Tensor, values_old: torch.Tensor, returns: torch.Tensor, eps_v: float
) -> torch.Tensor:
    """Per-token PPO value loss with the value clipped around its rollout estimate, [B, T].

    0.5 · max((V - R)², (clip(V, V_old - ε_v, V_old + ε_v) - R)²)
    """
    clipped = values_old + (values - values_old).clamp(-eps_v, eps_v)
    return 0.5 * torch.maximum((values - returns) ** 2, (clipped - returns) ** 2)


def aggregate(per_token: torch.Tensor, mask: torch.Tensor, mode: str = "seq_mean", max_len: int | None = None) -> torch.Tensor:
    """Reduce a [B, T] per-token loss to a scalar.

    seq_mean:   mean over sequences of each one's token mean (GRPO)
    token_mean: sum over all tokens / number of tokens (DAPO)
    constant:   sum / (B · max_len), max_len defaulting to T (Dr. GRPO): no length bias
    """
    _check("mode", mode, AGGREGATIONS)
    masked = per_token * mask
    if mode == "seq_mean":
        return (masked.sum(-1) / mask.sum(-1).clamp(min=1)).mean()
    if mode == "token_mean":
        return masked.sum() / mask.sum().clamp(min=1)
    return masked.sum() / (per_token.shape[0] * (max_len or per_token.shape[1]))


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (x * mask).sum() / mask.sum().clamp(min=1)
