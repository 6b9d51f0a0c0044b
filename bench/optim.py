"""The optimiser step every training loop shares (SFT, reward model, the three trainers)."""

from __future__ import annotations

import torch

from bench.distributed import average_gradients


def clip_and_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, max_grad_norm: float) -> torch.Tensor:
    """Average the gradients over the processes of a data-parallel run (bench/distributed.py), clip them, take
    the step, clear them. Returns the pre-clip norm (a tensor: no host sync)."""
    average_gradients(model)
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return grad_norm
