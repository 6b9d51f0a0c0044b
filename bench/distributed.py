"""One run on several processes, data parallel: `torchrun --nproc_per_node P -m bench.app ...` (or `accelerate launch`).

Every process holds the whole policy (and the frozen models) and runs the same trainer step on its own share
of the step's prompts or pairs (`EpochSampler.take` hands out the shares of one global order: P processes with
batch b see the examples one process with batch P·b sees). Then

    gradients     averaged over the processes by torch.distributed's all-reduce before each optimiser step of a
                  trainer (`clip_and_step` inside `data_parallel()`), so every process takes the same step and
                  the weights stay identical (stages are built by one process and never synchronised)
    the budget    the meter's FLOPs, tokens and samples are summed over the processes after each step, so a
                  budget buys the same compute whatever P; the decision to stop is taken by all together
    metrics       a step's `train/*` row is the mean over the processes
    files         only process 0 writes the run directory and logs to wandb; the others write a scratch
                  directory of their own, deleted when the run ends, and no checkpoint
    stages        built by process 0 alone (transformers saves a model from process 0 only), then read by all
    evaluation    only process 0's rows are kept; it samples the same held-out prompts on its fixed stream
                  whatever P, so `eval/*` does not depend on P
    failures      a step that fails in one process ends every process (the exception is raised, torchrun
                  stops the others) instead of leaving them waiting in a collective; a killed run starts
                  over (its other processes' random streams and shares are not in process 0's checkpoint)
    identity      `processes: P` joins the run's config (`with_processes`): another run directory and group

Where the mean of the processes' losses is not the loss of the whole batch, the step is DDP's approximation,
not the one-process step: token-mean losses over shares of different token counts (PPO, REINFORCE++) and the
batch whitening of advantages (PPO, REINFORCE++), which each process takes over its own share. Sequence-mean
losses (GRPO's default, RLOO's, DPO's) average exactly. Each process samples from its own random stream
(the trainer seed + its rank), so a P-process run is another draw of the same experiment, as another seed is.
A step's spread statistics (`reward_std`, `advantages/std`) are the mean of the processes', not the batch's;
a seconds budget is wall seconds, so P processes get P times the device-seconds of one.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from datetime import timedelta

import torch
import torch.distributed as dist

_averaging = False


def processes() -> int:
    """The processes torchrun (or accelerate launch) started for this run, from the environment (before `setup`)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def setup() -> None:
    """Join the process group the environment describes; nothing for one process."""
    if processes() > 1 and not dist.is_initialized():
        # the others wait for process 0 to build the stages (sampling pairs, training the reward model) at a
        # barrier: longer than NCCL's default 10 minutes on a real model
        timeout = timedelta(hours=2)
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
            dist.init_process_group("cpu:gloo,cuda:nccl", timeout=timeout)  # the meter's and the metrics' sums are CPU tensors
        else:
            dist.init_process_group("gloo", timeout=timeout)


def with_processes(resolved: dict) -> dict:
    """A run's config with its number of processes where there are several: P processes with batch b are another
    experiment than one process with b (another run identity and group, never averaged with it as a seed)."""
    return resolved | {"processes": processes()} if processes() > 1 else resolved


def world() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def is_main() -> bool:
    return rank() == 0


@contextmanager
def data_parallel():
    """Inside, `average_gradients` averages over the processes: the trainer's steps, never a stage's build."""
    global _averaging
    _averaging = True
    try:
        yield
    finally:
        _averaging = False


def average_gradients(model: torch.nn.Module) -> None:
    if not _averaging or world() == 1:
        return
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    flat = torch.cat([g.reshape(-1) for g in grads])  # one all-reduce, not one per tensor
    dist.all_reduce(flat)
    flat /= world()
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


def sum_over_processes(values: list[float]) -> list[float]:
    if world() == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(t)
    return t.tolist()


def mean_over_processes(row: dict[str, float]) -> dict[str, float]:
    if world() == 1:
        return row
    keys = sorted(row)
    return dict(zip(keys, (v / world() for v in sum_over_processes([float(row[k]) for k in keys]))))


def any_process(flag: bool) -> bool:
    """True on every process when it is true on one (a stop that all must take together)."""
    return sum_over_processes([float(flag)])[0] > 0


def check_same_weights(*models) -> None:
    """Every process must hold the same weights after the same averaged steps; a drift (a step one process took
    alone) fails the run here instead of averaging models that are no longer one."""
    models = [m for m in models if isinstance(m, torch.nn.Module)]
    if world() == 1 or not models:
        return
    with torch.no_grad():
        flat = torch.cat([p.detach().reshape(-1).double() for m in models for p in m.parameters()])
        checksum = torch.stack([flat.sum(), flat.square().sum()])
    extremes = torch.cat([checksum, -checksum])  # max and -min in one all-reduce: equal on every process iff max == min
    dist.all_reduce(extremes, op=dist.ReduceOp.MAX)
    if not torch.equal(extremes[:2], -extremes[2:]):
        raise RuntimeError("the data-parallel processes hold different weights: they took different steps")


@contextmanager
def main_first():
    """Process 0 runs the block first; the others run it once it has finished (accelerate's `main_process_first`)."""
    if not is_main():
        dist.barrier()
    yield
    if is_main() and world() > 1:
        dist.barrier()


def from_main(obj):
    """Process 0's `obj` on every process."""
    if world() == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]
