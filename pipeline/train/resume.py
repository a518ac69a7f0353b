"""Resumable training state: what a checkpoint holds, how a run picks it up, and how it is written.

A checkpoint is used only when its fingerprint (the params and input files that define the run,
plus the device type: CPU and CUDA runs differ numerically) and format version match, so a run
never resumes work written for other params. A damaged checkpoint only costs the steps it held:
training starts over from the given weights with a warning.
"""
from __future__ import annotations

import copy
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import torch
from torch import nn
from tqdm.auto import tqdm

from pipeline.core.errors import ArtifactError
from pipeline.core.io import load_torch, save_torch

CHECKPOINT_VERSION = 1


@dataclass
class Progress:
    """What a run has accumulated so far, besides the weights and optimizer."""

    start: int                                                # the step training continues from
    history: list[dict] = field(default_factory=list)
    snapshots: dict[int, dict] = field(default_factory=dict)
    ema_snapshots: dict[int, dict] = field(default_factory=dict)


def resume(checkpoint: Optional[Path], fingerprint: str, start_step: int, steps: int, model: nn.Module,
           ema: nn.Module, optimizer: tuple, make_optimizer: Callable[[], tuple], desc: str,
           main: bool) -> tuple[Progress, tuple]:
    """(progress, (optimizer, scheduler)) after loading `checkpoint` when it belongs to this run;
    otherwise the fresh state it was given."""
    fresh_progress = Progress(start=start_step)
    if checkpoint is None or not checkpoint.exists():
        return fresh_progress, optimizer
    opt, sched = optimizer
    device = next(model.parameters()).device
    fresh = copy.deepcopy(model.state_dict())
    try:
        state = load_torch(checkpoint, map_location=device)
        if state.get("fingerprint") == fingerprint and state.get("version") == CHECKPOINT_VERSION \
                and start_step <= state["step"] <= steps:
            model.load_state_dict(state["model"])
            ema.load_state_dict(state["ema"])
            opt.load_state_dict(state["optimizer"])
            sched.load_state_dict(state["scheduler"])
            if main:
                tqdm.write(f"{desc}: resuming from the checkpoint at step {state['step']}")
            return Progress(start=state["step"], history=state["history"], snapshots=state["snapshots"],
                            ema_snapshots=state.get("ema_snapshots", {})), (opt, sched)
        if main:
            tqdm.write(f"{desc}: ignoring {checkpoint} (written under other params)")
        return fresh_progress, (opt, sched)
    except (ArtifactError, AttributeError, KeyError, RuntimeError, TypeError, ValueError) as err:
        reason = err.problem if isinstance(err, ArtifactError) else (str(err).splitlines() or [""])[0]
        tqdm.write(f"warning: {desc}: ignoring corrupt checkpoint {checkpoint} "
                   f"({reason or type(err).__name__}); training starts over", file=sys.stderr)
        model.load_state_dict(fresh)
        ema.load_state_dict(fresh)
        return fresh_progress, make_optimizer()


def save_checkpoint(path: Path, fingerprint: str, done: int, model: nn.Module, ema: nn.Module,
                    opt: torch.optim.Optimizer, sched, progress: Progress) -> None:
    save_torch({"version": CHECKPOINT_VERSION, "fingerprint": fingerprint, "step": done,
                "model": model.state_dict(), "ema": ema.state_dict(),
                "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                "history": progress.history, "snapshots": progress.snapshots,
                "ema_snapshots": progress.ema_snapshots}, path)


def cpu_state(module: nn.Module) -> dict:
    """A detached CPU copy of a module's state (a snapshot that later steps leave alone)."""
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}
