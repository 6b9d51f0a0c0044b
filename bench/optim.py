"""The optimiser and its step, shared by every training loop (SFT, reward model, the trainers)."""

from __future__ import annotations

import torch

from bench.distributed import average_gradients


def adamw(model: torch.nn.Module, lr: float) -> torch.optim.AdamW:
    """AdamW without weight decay. `foreach` takes each update as a few multi-tensor kernels instead of a
    loop over the parameters: on the CPU the same weights bit for bit (tests/test_algorithms.py) and 1-2 % of
    a PPO or GRPO step at the small preset (scripts/step_speed.py); on CUDA it is PyTorch's default. Only the
    trainable weights: a LoRA model's frozen base has neither gradients nor optimiser state."""
    return torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=0.0, foreach=True)


def clip_and_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, max_grad_norm: float) -> torch.Tensor:
    """Average the gradients over the processes of a data-parallel run (bench/distributed.py), clip them, take
    the step, clear them. Returns the pre-clip norm (a tensor: no host sync)."""
    average_gradients(model)
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    # autocast keeps the bf16 copy of each trained weight it cast until its region ends, and a trainer step (one
    # region) takes several optimiser steps (PPO's epochs × minibatches, GRPO's minibatches): without this, every
    # forward after the first update ran on the weights from before it, in bf16 (tests/test_precision.py)
    torch.clear_autocast_cache()
    return grad_norm
