"""DPO (Rafailov et al. 2023): preference optimisation on fixed pairs, no sampling, no reward model.

Two models: the policy (trained) and the frozen reference, whose log-probs of every
pair are computed once at the start (inside the budget) and reused.

Departures from the paper: none in the loss. Pairs are the cached preference data,
sampled from the SFT policy and labelled by the simulated annotator, so DPO trains on
exactly the pairs the reward model of PPO and GRPO learned from.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import datasets
import torch

from bench.algos import Context, PolicyTrainer, register_algo, train_metrics
from bench.losses import dpo_loss
from bench.optim import clip_and_step
from bench.rollout import make_batch, token_logprobs


class DPOLossType(str, enum.Enum):
    sigmoid = "sigmoid"
    ipo = "ipo"


@dataclass
class DPOConfig:
    name: str = "dpo"
    beta: float = 0.1
    """β: strength of the implicit KL to the reference (paper: 0.1; lower drifts further)."""
    loss_type: DPOLossType = DPOLossType.sigmoid
    """`sigmoid` (DPO) or `ipo` (Azar et al. 2023: squared loss, target margin 1/(2β))."""
    label_smoothing: float = 0.0
    """ε of conservative DPO: the assumed share of flipped labels (0 = plain DPO)."""
    batch_size: int = 32
    """Pairs per optimiser step."""
    lr: float = 5e-4
    """AdamW learning rate (paper: 5e-7 on 6B models; a tiny model needs far more)."""
    max_grad_norm: float = 1.0


class DPO(PolicyTrainer):
    def __init__(self, cfg: DPOConfig, ctx: Context):
        self.pairs = datasets.load_from_disk(str(ctx.stages.pairs))
        if len(self.pairs) < cfg.batch_size:
            raise ValueError(f"algo.batch_size {cfg.batch_size} is larger than the {len(self.pairs)} preference pairs")
        super().__init__(ctx, cfg.lr, len(self.pairs), reference=True, rewarded=False)  # the sampler goes over the pairs
        self.cfg = cfg
        with torch.no_grad():  # reference log-probs of the fixed pairs, once
            ref = [self._logps(ctx.reference, range(i, min(i + 256, len(self.pairs)))) for i in range(0, len(self.pairs), 256)]
        self.ref_chosen = torch.cat([c for c, _ in ref])  # [N]
        self.ref_rejected = torch.cat([r for _, r in ref])  # [N]

    def _logps(self, model, idx) -> tuple[torch.Tensor, torch.Tensor]:
        """Summed completion log-probs of chosen and rejected, in one forward pass: ([n], [n])."""
        rows = self.pairs[list(idx)]
        n = len(rows["prompt"])
        ended = rows["chosen_ended"] + rows["rejected_ended"]  # a cut-off sample gets no EOS it did not produce
        batch = make_batch(self.ctx.tokenizer, rows["prompt"] * 2, rows["chosen"] + rows["rejected"], self.ctx.device, ended)
        logps = (token_logprobs(model, batch) * batch.completion_mask).sum(-1)  # [2n]
        return logps[:n], logps[n:]

    def step(self) -> dict[str, float]:
        # 1. Next minibatch of pairs, reshuffled every epoch.
        idx = self.sampler.take(self.cfg.batch_size)

        with self.ctx.phases("update"):
            # 2. Policy log-probs of both completions; reference ones were computed once.
            chosen, rejected = self._logps(self.policy, idx)
            ref_chosen, ref_rejected = self.ref_chosen[idx], self.ref_rejected[idx]
            # 3. DPO loss and one optimiser step.
            losses, chosen_rewards, rejected_rewards = dpo_loss(
                chosen, rejected, ref_chosen, ref_rejected, self.cfg.beta, self.cfg.loss_type.value, self.cfg.label_smoothing
            )
            loss = losses.mean()
            loss.backward()
            grad_norm = clip_and_step(self.policy, self.optimizer, self.cfg.max_grad_norm)
        self.ctx.meter.steps += 1
        self.ctx.meter.samples += len(idx)

        # 4. Metrics (TRL's names), one host sync.
        margins = chosen_rewards - rejected_rewards
        return train_metrics({
            "loss": loss.detach(), "rewards/chosen": chosen_rewards.mean(), "rewards/rejected": rejected_rewards.mean(),
            "rewards/margins": margins.mean(), "rewards/accuracies": (margins > 0).float().mean(),
            "logps/chosen": chosen.detach().mean(), "logps/rejected": rejected.detach().mean(), "grad_norm": grad_norm,
            # Σ_t (log π - log π_ref) on the training pairs, chosen and rejected averaged. Not `train/kl`:
            # on pairs sampled from π_ref it estimates -KL(π_ref‖π) (≤ 0), not PPO's and GRPO's KL(π‖π_ref)
            "pairs_log_ratio": ((chosen - ref_chosen + rejected - ref_rejected) / 2).detach().mean(),
        }, self.optimizer)  # fmt: skip


register_algo("dpo", DPOConfig, DPO)
