"""Where a stage computes: this rank's device, and how many CPU threads it may use.

CPU threads are a runtime resource like the rank count: no params key and nothing in dvc.yaml, so
a study keeps its cache when it moves between a laptop, a parallel `lth-diffusion repro -j N` and a
cluster. The budget comes from the environment:

    LTH_THREADS   CPU threads for this stage (unset: every core this process may run on)

Ranks on one machine split that budget. CPU float results can depend on the thread count in
their last bits (oneDNN's reduction order); compare runs made with the same LTH_THREADS byte by byte.
"""
from __future__ import annotations

import os

import torch

from pipeline.core.errors import LaunchError
from pipeline.runtime import distributed

ENV_THREADS = "LTH_THREADS"


def available_cores() -> int:
    """Cores this process may run on (its affinity mask, which containers and SLURM narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def cpu_threads() -> int:
    """This stage's CPU thread budget: LTH_THREADS, else every available core."""
    raw = os.environ.get(ENV_THREADS, "").strip()
    if not raw:
        return available_cores()
    try:
        threads = int(raw)
    except ValueError:
        raise LaunchError(f"{ENV_THREADS}={raw!r}: expected a positive integer") from None
    if threads < 1:
        raise LaunchError(f"{ENV_THREADS}={raw!r}: expected a positive integer")
    return threads


def pick_device() -> torch.device:
    """This rank's GPU (its LOCAL_RANK under torchrun), else the CPU."""
    return distributed.device()


def configure_threads() -> int:
    """Give torch this rank's share of the CPU threads, on a GPU node too (its CPU-side statistics
    need them; torchrun would leave every rank at one thread). Returns the count set."""
    threads = max(1, cpu_threads() // distributed.local_world_size())
    torch.set_num_threads(threads)
    return threads
