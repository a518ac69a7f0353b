"""The training loop shared by the dense run and every IMP retrain.

Batches, timesteps and noise are a pure function of (seed, step), so a run resumed from a
checkpoint takes exactly the same path as an uninterrupted one. With a mask, pruned weights stay
exactly zero in the model, its gradients (hence Adam's state) and the EMA copy.

A non-finite loss or weight stops training with `NonFiniteError` before anything is saved: the
first bad step is tracked on the device and read at the once-per-log-window sync and before each
checkpoint, so the last good checkpoint is never overwritten by a NaN state.

Data parallel (torchrun, see distributed.py): every rank draws the whole global batch's indices,
flips, timesteps, noise and dropout masks from the (seed, step) stream and trains on its own slice,
so 1, 2 or 8 ranks see the same examples; DDP averages the gradients, so the weights stay identical on every rank
and the masks are enforced the same way everywhere. Only rank 0 writes checkpoints and progress.

Late rewinding continues the dense run: a retrain from theta_k starts at step k (`start_step`), so
its learning-rate schedule picks up where the dense run was at step k (no second warm-up) and it
sees the data, timesteps and noise of steps k..T-1 of the same data seed. Adam's moments and the
EMA copy start afresh from the rewound weights.
"""
from __future__ import annotations

import copy
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import torch
from torch import nn
from tqdm.auto import tqdm

from pipeline.runtime import distributed
from pipeline.runtime.compiling import TRAIN_IMAGES_WORTH_COMPILING, maybe_compile
from pipeline.core.errors import ArtifactError, NonFiniteError
from pipeline.core.config import TrainConfig
from pipeline.ddpm.diffusion import Diffusion
from pipeline.ddpm.unet import set_dropout_rows
from pipeline.core.io import load_torch, save_torch
from pipeline.sparsity.masks import Mask

CHECKPOINT_VERSION = 1


def lr_factor(step: int, steps: int, cfg: TrainConfig) -> float:
    """The learning-rate multiplier of the optimizer step taken after `step` steps (absolute, so a
    retrain continuing at step k picks up the dense run's schedule): a linear warm-up, then
    constant, or a cosine or linear decay to `cfg.lr_floor` of the peak at step `steps`."""
    warm = min(1.0, (step + 1) / max(cfg.warmup_steps, 1))
    if cfg.lr_schedule == "constant" or step + 1 <= cfg.warmup_steps:
        return warm
    progress = min(1.0, (step + 1 - cfg.warmup_steps) / max(steps - cfg.warmup_steps, 1))
    decay = 0.5 * (1.0 + math.cos(math.pi * progress)) if cfg.lr_schedule == "cosine" else 1.0 - progress
    return cfg.lr_floor + (1.0 - cfg.lr_floor) * decay


def step_seed(seed: int, step: int) -> int:
    # distinct, reproducible stream per (run seed, step); large odd multiplier avoids overlaps
    return (seed * 1_000_003 + step) % (2**63 - 1)


def batch_indices(n: int, batch_size: int, seed: int, step: int) -> torch.Tensor:
    """Indices for `step`: epochs walk a seeded permutation of the data, so every image is seen
    once per epoch and the order depends only on (seed, step)."""
    start = step * batch_size
    idx = []
    while len(idx) < batch_size:
        epoch, offset = divmod(start + len(idx), n)
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(step_seed(seed, -1 - epoch)))
        idx.extend(perm[offset: offset + batch_size - len(idx)].tolist())
    return torch.tensor(idx)


@dataclass
class TrainResult:
    model: nn.Module
    ema: nn.Module
    history: list[dict] = field(default_factory=list)   # rows: step, loss, lr (no timings: byte-stable)
    snapshots: dict[int, dict] = field(default_factory=dict)  # step -> model state (e.g. theta_k)
    ema_snapshots: dict[int, dict] = field(default_factory=dict)  # step -> EMA state (convergence checks)
    resumed_from: int = 0


def _ema_update(ema_params: list[torch.Tensor], params: list[torch.Tensor], decay: float) -> None:
    torch._foreach_lerp_(ema_params, params, 1.0 - decay)


def train(model: nn.Module, diffusion: Diffusion, data: torch.Tensor, cfg: TrainConfig, *,
          steps: int, seed: int, start_step: int = 0, mask: Optional[Mask] = None, hflip: bool = False,
          checkpoint: Optional[Path] = None, fingerprint: str = "", snapshot_steps: tuple[int, ...] = (),
          ema_snapshot_steps: tuple[int, ...] = (),
          desc: str = "train", progress: bool = True, stop_after: Optional[int] = None,
          after_step: Optional[Callable[[int, nn.Module], None]] = None) -> TrainResult:
    """Train `model` in place through optimizer steps start_step..steps-1; return it with its EMA copy.

    `steps` is the step the run ends at, `start_step` the one it begins at (0, or k for a retrain
    from theta_k): the lr schedule and the (seed, step) data/timestep/noise stream use these
    absolute step numbers. `checkpoint`: resumable state is written there every
    `cfg.checkpoint_every` steps and picked up if it exists with the same `fingerprint` and device
    type (CPU and CUDA runs differ numerically). `snapshot_steps`: model states kept after that many
    steps (`start_step` = the starting weights); `ema_snapshot_steps`: the same for the EMA copy. `stop_after` exists for tests of resumption;
    `after_step(step, model)` is called after every optimizer step (tests check ranks agree).
    Under torchrun every rank calls this with the same arguments; `cfg.batch_size` is the global
    batch, split over the ranks.
    """
    if not 0 <= start_step < steps:
        raise ValueError(f"start_step={start_step} must be in [0, steps={steps})")
    device = next(model.parameters()).device
    world, main = distributed.world_size(), distributed.is_main()
    if cfg.batch_size < world:
        raise ValueError(f"train.batch_size={cfg.batch_size} is split over {world} ranks: use fewer ranks")
    lo, hi = distributed.shard(cfg.batch_size)
    # each rank's loss is weighted by its share of the global batch (shares may differ by one);
    # DDP averages gradients over ranks, so x world restores the global-batch mean
    loss_weight = (hi - lo) / cfg.batch_size * world
    fingerprint = f"{device.type}:{fingerprint}"
    # channels-last convolutions are ~15 % faster on CPU (oneDNN) and the norm for tensor cores
    model.to(memory_format=torch.channels_last)
    data = data.to(device).contiguous(memory_format=torch.channels_last)
    bound = mask.bind(model) if mask is not None else None
    if bound is not None:
        bound.apply_()  # the start obeys the mask, and so the EMA copy made from it
    ema = copy.deepcopy(model).eval().requires_grad_(False)

    def make_optimizer():
        # fused Adam: one kernel for all parameters, no host syncs (CUDA only)
        opt = (torch.optim.Adam(model.parameters(), lr=cfg.lr, fused=True) if device.type == "cuda"
               else torch.optim.Adam(model.parameters(), lr=cfg.lr, foreach=True))
        # the scheduler counts its own steps from 0; offset it so the lr at absolute step s is the
        # same in every run that passes through s
        return opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s + start_step, steps, cfg))

    opt, sched = make_optimizer()
    history: list[dict] = []
    snapshots: dict[int, dict] = {}
    ema_snapshots: dict[int, dict] = {}
    start = start_step

    if checkpoint is not None and checkpoint.exists():
        fresh = copy.deepcopy(model.state_dict())
        try:
            state = load_torch(checkpoint, map_location=device)
            if state.get("fingerprint") == fingerprint and state.get("version") == CHECKPOINT_VERSION \
                    and start_step <= state["step"] <= steps:
                model.load_state_dict(state["model"])
                ema.load_state_dict(state["ema"])
                opt.load_state_dict(state["optimizer"])
                sched.load_state_dict(state["scheduler"])
                history, snapshots, start = state["history"], state["snapshots"], state["step"]
                ema_snapshots = state.get("ema_snapshots", {})
                if main:
                    tqdm.write(f"{desc}: resuming from the checkpoint at step {start}")
            elif main:
                tqdm.write(f"{desc}: ignoring {checkpoint} (written under other params)")
        except (ArtifactError, AttributeError, KeyError, RuntimeError, TypeError, ValueError) as err:
            # a damaged checkpoint only costs the steps it held: start over from the given weights
            reason = err.problem if isinstance(err, ArtifactError) else (str(err).splitlines() or [""])[0]
            tqdm.write(f"warning: {desc}: ignoring corrupt checkpoint {checkpoint} "
                       f"({reason or type(err).__name__}); training starts over", file=sys.stderr)
            model.load_state_dict(fresh)
            ema.load_state_dict(fresh)
            opt, sched = make_optimizer()
            history, snapshots, ema_snapshots, start = [], {}, {}, start_step

    ema_params, params = list(ema.parameters()), list(model.parameters())
    ema_bound = mask.bind(ema) if mask is not None else None

    def update() -> None:
        """One optimizer step, and the one place the mask is enforced during training: pruned
        weights get no gradient (so the clip norm and Adam's moments never see them), are zeroed
        again after the step, and the EMA copy, updated from the masked weights, is masked too."""
        if bound is not None:
            bound.mask_grads_()
        nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        opt.step()
        sched.step()
        if bound is not None:
            bound.apply_()
        _ema_update(ema_params, params, cfg.ema_decay)
        if ema_bound is not None:
            ema_bound.apply_()
    if start_step in snapshot_steps and start_step not in snapshots:
        snapshots[start_step] = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}

    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda"
                else torch.autocast("cpu", enabled=False))
    net = model
    if world > 1:
        # the U-Net has no buffers, so DDP's defaults add no per-step sync
        net = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    # decided from the whole run, not what is left of it: a run resumed near its end takes the
    # same path (compiled or eager) as it started on
    runner = maybe_compile(net, device, desc, work=(steps - start_step) * cfg.batch_size,
                           worth=TRAIN_IMAGES_WORTH_COMPILING)

    def forward_backward(x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        def run(module) -> torch.Tensor:
            opt.zero_grad(set_to_none=True)
            with autocast:
                loss = diffusion.loss(module, x0, t, noise)
            (loss if world == 1 else loss * loss_weight).backward()
            return loss.detach()
        return runner.run(run)

    running = torch.zeros((), device=device)
    first_bad = torch.full((), -1, dtype=torch.long, device=device)  # first step with a non-finite loss
    bad_loss = torch.zeros((), device=device)

    def stop_if_non_finite(done: int) -> None:
        """Raise NonFiniteError if a loss so far, or the weights now, are NaN/inf (one host sync)."""
        if int(first_bad) >= 0:
            bar.close()  # the error line comes after the progress bar, not inside it
            raise NonFiniteError(f"loss is {float(bad_loss)} at step {int(first_bad) + 1}; "
                                 f"stopped, nothing saved (last good checkpoint kept)")
        if not bool(torch.stack([torch.isfinite(p).all() for p in params]).all()):
            bar.close()
            raise NonFiniteError(f"weights turned non-finite by step {done} (losses finite so far); "
                                 f"stopped, nothing saved (last good checkpoint kept)")
    window, t_window = 0, time.perf_counter()
    model.train()
    # dropout masks, like the noise, are drawn for the whole global batch and sliced
    set_dropout_rows(model, (cfg.batch_size, lo, hi))
    bar = tqdm(total=steps, initial=start, desc=desc, unit="step", disable=not (progress and main),
               dynamic_ncols=True, mininterval=1.0)
    shape = (cfg.batch_size, *data.shape[1:])
    for step in range(start, steps):
        # the whole global batch is drawn on every rank, in the single-rank order; each keeps its slice
        torch.manual_seed(step_seed(seed, step))
        idx = batch_indices(len(data), cfg.batch_size, seed, step)[lo:hi]
        if device.type == "cuda":
            idx = idx.pin_memory().to(device, non_blocking=True)  # no host sync inside the step
        x0 = data[idx.to(device)]
        if hflip:
            flip = (torch.rand(cfg.batch_size, device=device) < 0.5)[lo:hi]
            x0 = torch.where(flip[:, None, None, None], x0.flip(-1), x0)
        t = torch.randint(0, diffusion.timesteps, (cfg.batch_size,), device=device)[lo:hi]
        # filled in memory order, as randn_like of the channels-last batch always was
        noise = torch.empty(shape, device=device, memory_format=torch.channels_last).normal_()[lo:hi]
        loss = forward_backward(x0, t, noise)
        update()
        lost = ~torch.isfinite(loss) & (first_bad < 0)  # on device: no per-step host sync
        first_bad.masked_fill_(lost, step)
        bad_loss.copy_(torch.where(lost, loss.float(), bad_loss))
        running += loss if world == 1 else loss * (loss_weight / world)
        window += 1
        done = step + 1
        if after_step is not None:
            after_step(done, model)
        if done in snapshot_steps:
            snapshots[done] = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        if done in ema_snapshot_steps:
            ema_snapshots[done] = {k: v.detach().cpu().clone() for k, v in ema.state_dict().items()}
        if done % cfg.log_every == 0 or done == steps:
            stop_if_non_finite(done)
            distributed.all_reduce_sum(running)  # the global batch's loss
            mean_loss = (running / window).item()  # host syncs: here, once per log window, and at checkpoints
            ips = window * cfg.batch_size / (time.perf_counter() - t_window)
            history.append({"step": done, "loss": mean_loss, "lr": sched.get_last_lr()[0]})
            bar.set_postfix(loss=f"{mean_loss:.4f}", img_s=f"{ips:.0f}")
            running.zero_()
            window, t_window = 0, time.perf_counter()
        bar.update(1)
        if checkpoint is not None and (done % cfg.checkpoint_every == 0 or done == steps):
            stop_if_non_finite(done)  # every rank checks, so all stop together
        if main and checkpoint is not None and (done % cfg.checkpoint_every == 0 or done == steps):
            save_torch({"version": CHECKPOINT_VERSION, "fingerprint": fingerprint, "step": done,
                        "model": model.state_dict(), "ema": ema.state_dict(),
                        "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                        "history": history, "snapshots": snapshots,
                        "ema_snapshots": ema_snapshots}, checkpoint)
        if stop_after is not None and done >= stop_after:
            break
    bar.close()
    stop_if_non_finite(done if steps > start else start)
    set_dropout_rows(model, None)
    model.eval()
    return TrainResult(model=model, ema=ema, history=history, snapshots=snapshots, ema_snapshots=ema_snapshots,
                       resumed_from=start)
