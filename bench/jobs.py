"""The jobs of one sweep sharing one machine (`hydra/launcher=local_jobs`, Hydra's joblib launcher).

Each of `n_jobs` concurrent jobs gets `cores // n_jobs` threads (torch's intra-op pool and the OMP / MKL
variables its subprocesses read), so the jobs share the cores instead of each starting a thread per core;
and, on a machine with several GPUs, job k gets GPU k mod GPUs. A launcher with a job per allocation
(SLURM, submitit's local executor) sizes each job itself: nothing changes there.
"""

from __future__ import annotations

import os

import torch
from hydra.core.hydra_config import HydraConfig

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def job_share(n_jobs: int, job_num: int, cores: int, gpus: int) -> tuple[int, int | None]:
    """(threads, GPU index or None) of job `job_num` when `n_jobs` jobs run at once; `n_jobs` < 0 counts
    from the cores as joblib does (-1: one job per core)."""
    concurrent = n_jobs if n_jobs > 0 else max(1, cores + 1 + n_jobs)
    return max(1, cores // concurrent), (job_num % gpus if gpus else None)


def share_machine() -> None:
    """Apply this job's share, when the launcher runs several jobs on this machine at once."""
    launcher = HydraConfig.get().launcher
    if "n_jobs" not in launcher:
        return
    threads, gpu = job_share(launcher.n_jobs, HydraConfig.get().job.num, len(os.sched_getaffinity(0)), torch.cuda.device_count())
    torch.set_num_threads(threads)
    os.environ.update(dict.fromkeys(THREAD_VARIABLES, str(threads)))
    if gpu is not None:
        torch.cuda.set_device(gpu)
