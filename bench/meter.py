"""The budget meter: every forward and backward pass of every model is counted here.

`Meter.watch(model, name)` puts a forward pre-hook on a model, so nothing can run
a model without being counted: training forwards, reference and reward-model
scoring, and every step of generation (prefill and each decoded token, read off
the query and key lengths of the call). FLOPs follow the usual rule

    forward  = 2·N·tokens + A                 (N: matmul weights; A = 4·L·d·B·q·k, the attention scores:
                                               L layers, width d)
    backward = 2·N·tokens + 2·A + 2·N_t·tokens  (the gradients of the activations, through every weight and
                                               both attention products, and of the N_t trained weights;
                                               counted at forward time when grad is enabled and the model
                                               has trainable weights)

With every weight trained (N_t = N) the backward is the usual 2 × forward, which `tests/test_meter.py` checks
against `torch.utils.flop_counter` on the presets. A LoRA model (bench/models.py `with_lora`) trains only its
adapters: N counts the base's and the adapters' matmuls, N_t the adapters' (and a critic's head), since
autograd computes no gradient for a frozen weight (tests/test_lora.py works a step by hand). It counts the
activation gradient into the first block as well, which autograd skips below a frozen embedding: about 1 % of
a LoRA step on SmolLM2, 15 % on the two-block tiny preset. A causal LM's vocabulary head (V·d of N) runs on
the rows it is asked for: the last `logits_to_keep` positions of a call (bench/rollout.py asks for the
completion's), every position otherwise.
Evaluation runs inside `meter.paused()`: it is outside the budget.
"""

from __future__ import annotations

import time
from collections import defaultdict
from contextlib import contextmanager

import torch
from torch import nn

from bench import distributed
from bench.config import BudgetConfig, BudgetUnit
from bench.models import attention_dims, matmul_params

BUDGET_AXIS = {BudgetUnit.flops: "compute/flops", BudgetUnit.seconds: "compute/seconds", BudgetUnit.steps: "compute/steps"}
"""The logged metric each budget unit is spent in."""


class Meter:
    def __init__(self, budget: BudgetConfig):
        self.budget = budget
        self.flops = 0.0
        self.flops_by_model: dict[str, float] = defaultdict(float)
        self.tokens = 0
        self.samples = 0
        self.steps = 0
        self._seconds = 0.0
        self._started: float | None = None
        self._paused = 0
        self._synced: dict[str, float] = {}

    def watch(self, model: nn.Module, name: str) -> nn.Module:
        n_params, n_trained = matmul_params(model), matmul_params(model, trainable=True)
        head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
        n_head = head.weight.numel() if head is not None else 0  # a causal LM's vocabulary head
        n_head_trained = n_head if head is not None and head.weight.requires_grad else 0
        layers, width = attention_dims(model)

        def count(module, args, kwargs):
            if self._paused:
                return
            ids = kwargs.get("input_ids", args[0] if args else None)
            if ids is None:
                ids = kwargs["inputs_embeds"]
            batch, q_len = ids.shape[:2]
            mask = kwargs.get("attention_mask")
            k_len = mask.shape[-1] if mask is not None else q_len
            keep = kwargs.get("logits_to_keep") or q_len  # the head's rows: `logits_to_keep` last positions, or all
            rows, head_rows = batch * q_len, batch * min(keep, q_len)
            matmuls = 2 * (n_params - n_head) * rows + 2 * n_head * head_rows
            attention = 4 * layers * width * batch * q_len * k_len
            flops = matmuls + attention
            if torch.is_grad_enabled() and any(p.requires_grad for p in module.parameters()):
                trained = 2 * (n_trained - n_head_trained) * rows + 2 * n_head_trained * head_rows
                flops += matmuls + 2 * attention + trained  # the backward pass
            self.flops += flops
            self.flops_by_model[name] += flops
            self.tokens += batch * q_len

        model.register_forward_pre_hook(count, with_kwargs=True)
        return model

    # -- processes ----------------------------------------------------------
    def _counts(self) -> dict[str, float]:
        return {"flops": self.flops, "tokens": self.tokens, "samples": self.samples} | {f"model/{k}": v for k, v in self.flops_by_model.items()}

    def mark_synced(self) -> None:
        """What was counted so far every process did alike (building the trainer): counted once, not summed."""
        self._synced = self._counts()

    def sync(self) -> None:
        """Add up what every process of a data-parallel run counted since the last sync (bench/distributed.py)."""
        if distributed.world() == 1:
            return
        now = self._counts()
        keys = sorted(now)
        before = self._synced
        total = distributed.sum_over_processes([now[k] - before.get(k, 0.0) for k in keys])
        counts = {k: before.get(k, 0.0) + t for k, t in zip(keys, total)}
        self.flops, self.tokens, self.samples = counts.pop("flops"), int(counts.pop("tokens")), int(counts.pop("samples"))
        self.flops_by_model = defaultdict(float, {k.removeprefix("model/"): v for k, v in counts.items()})
        self._synced = self._counts()

    # -- time ---------------------------------------------------------------
    def start(self) -> None:
        self._started = time.perf_counter()

    @property
    def seconds(self) -> float:
        running = time.perf_counter() - self._started if self._started is not None and not self._paused else 0.0
        return self._seconds + running

    @contextmanager
    def paused(self):
        """Work inside (evaluation, checkpointing) is neither counted nor timed."""
        if self._started is not None and not self._paused:
            self._seconds += time.perf_counter() - self._started
        self._paused += 1
        try:
            yield
        finally:
            self._paused -= 1
            if not self._paused:
                self._started = time.perf_counter()

    # -- budget -------------------------------------------------------------
    def spent_fraction(self) -> float:
        used = {BudgetUnit.flops: self.flops, BudgetUnit.seconds: self.seconds, BudgetUnit.steps: self.steps}
        return used[self.budget.unit] / self.budget.amount

    def exhausted(self) -> bool:
        return self.spent_fraction() >= 1.0

    def metrics(self) -> dict[str, float]:
        return {
            "compute/flops": self.flops,
            "compute/seconds": self.seconds,
            "compute/samples": self.samples,
            "compute/tokens": self.tokens,
            "compute/steps": self.steps,
            "compute/budget_fraction": self.spent_fraction(),
            **{f"compute/flops_by_model/{k}": v for k, v in self.flops_by_model.items()},
        }

    def state_dict(self) -> dict:
        return {
            "flops": self.flops,
            "flops_by_model": dict(self.flops_by_model),
            "tokens": self.tokens,
            "samples": self.samples,
            "steps": self.steps,
            "seconds": self.seconds,
        }

    def load_state_dict(self, state: dict) -> None:
        self.flops, self.tokens = state["flops"], state["tokens"]
        self.samples, self.steps, self._seconds = state["samples"], state["steps"], state["seconds"]
        self.flops_by_model = defaultdict(float, state["flops_by_model"])
        if self._started is not None:
            self._started = time.perf_counter()
