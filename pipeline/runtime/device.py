"""Where a stage computes: this rank's device, and how many CPU threads it may use."""
from __future__ import annotations

import torch

from pipeline.runtime import distributed


def pick_device() -> torch.device:
    """This rank's GPU (its LOCAL_RANK under torchrun), else the CPU."""
    return distributed.device()


def configure_threads(threads: int) -> None:
    # ranks on one machine share its cores: split the budget instead of oversubscribing it
    if not torch.cuda.is_available():
        torch.set_num_threads(max(1, threads // distributed.local_world_size()))
