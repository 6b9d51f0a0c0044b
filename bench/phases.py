"""Named phases (rollout, update, ...) that time themselves and record peak memory.

Peak memory: on CUDA `torch.cuda.max_memory_allocated` after a reset at the start of
the phase; on the CPU the process's peak resident set size (VmHWM), reset per phase
through /proc/self/clear_refs where Linux allows it, else the lifetime peak.
"""

from __future__ import annotations

import time
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path

import psutil
import torch
from torch import nn

_CLEAR_REFS = Path("/proc/self/clear_refs")


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    else:
        try:
            _CLEAR_REFS.write_text("5")  # "5" resets the peak RSS (Linux >= 4.0)
        except OSError:
            pass


def _peak_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    try:
        status = Path("/proc/self/status").read_text()
        line = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
        return int(line.split()[1]) * 1024
    except (OSError, StopIteration):  # not Linux: the current resident size is the best we have
        return psutil.Process().memory_info().rss


class Phases:
    """Accumulates `perf/phase_s/<name>` and `memory/peak_bytes/<name>` between `pop()` calls."""

    def __init__(self, device: torch.device):
        self.device = device
        self.seconds: dict[str, float] = defaultdict(float)  # since the last pop()
        self.total_seconds: dict[str, float] = defaultdict(float)
        self.peak: dict[str, int] = {}

    @contextmanager
    def __call__(self, name: str):
        _reset_peak(self.device)
        start = time.perf_counter()
        try:
            yield
        finally:
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            elapsed = time.perf_counter() - start
            self.seconds[name] += elapsed
            self.total_seconds[name] += elapsed
            self.peak[name] = max(self.peak.get(name, 0), _peak_bytes(self.device))

    def state_dict(self) -> dict:
        """What a resumed run needs for its totals: the seconds and peaks of every phase so far."""
        return {"total_seconds": dict(self.total_seconds), "peak": dict(self.peak)}

    def load_state_dict(self, state: dict) -> None:
        self.total_seconds = defaultdict(float, state["total_seconds"])
        self.peak = dict(state["peak"])

    def pop(self) -> dict[str, float]:
        out = {f"perf/phase_s/{k}": v for k, v in self.seconds.items()}
        out |= {f"memory/peak_bytes/{k}": float(v) for k, v in self.peak.items()}
        self.seconds.clear()
        return out


def model_bytes(name: str, model: nn.Module, optimizer: torch.optim.Optimizer | None = None, counted: set[int] | None = None) -> dict[str, float]:
    """Bytes held by a model's parameters, gradients (trainable ones) and optimiser state. `counted`: the
    parameters (ids) already reported for another model of the run, left out here and added to: a LoRA
    model's base is its frozen model's weights (bench/models.py `with_lora`), held once and reported once."""
    counted = set() if counted is None else counted
    own = [p for p in model.parameters() if id(p) not in counted]
    counted.update(id(p) for p in own)
    params = sum(p.numel() * p.element_size() for p in own)
    grads = sum(p.numel() * p.element_size() for p in own if p.requires_grad)
    state = 0
    if optimizer is not None:
        for per_param in optimizer.state.values():
            state += sum(t.numel() * t.element_size() for t in per_param.values() if torch.is_tensor(t))
    return {
        f"memory/{name}/param_bytes": float(params),
        f"memory/{name}/grad_bytes": float(grads),
        f"memory/{name}/optimizer_bytes": float(state),
    }
