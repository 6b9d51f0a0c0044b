"""The optimiser step every training loop shares (SFT, reward model, the three trainers)."""

from __future__ import annotations

import torch


def clip_and_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, max_grad_norm: float) -> torch.Tensor:
    """Clip the gradients, take the step, clear them. Returns the pre-clip norm (a tensor: no host sync)."""
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return grad_norm
