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
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import torch
from torch import nn
from tqdm.auto import tqdm

from pipeline.runtime import distributed
from pipeline.runtime.compiling import TRAIN_IMAGES_WORTH_COMPILING, maybe_compile
from pipeline.core.errors import NonFiniteError
from pipeline.core.config import TrainConfig
from pipeline.ddpm.diffusion import Diffusion
from pipeline.ddpm.unet import set_dropout_rows
from pipeline.sparsity.masks import Mask
from pipeline.train.resume import CHECKPOINT_VERSION, cpu_state, resume, save_checkpoint  # noqa: F401


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


def _optimizer_factory(model: nn.Module, device: torch.device, cfg: TrainConfig, start_step: int, steps: int):
    def make_optimizer():
        # fused Adam: one kernel for all parameters, no host syncs (CUDA only)
        opt = (torch.optim.Adam(model.parameters(), lr=cfg.lr, fused=True) if device.type == "cuda"
               else torch.optim.Adam(model.parameters(), lr=cfg.lr, foreach=True))
        # the scheduler counts its own steps from 0; offset it so the lr at absolute step s is the
        # same in every run that passes through s
        return opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s + start_step, steps, cfg))
    return make_optimizer


def _draw_batch(data: torch.Tensor, diffusion: Diffusion, cfg: TrainConfig, seed: int, step: int, lo: int,
                hi: int, hflip: bool, shape: tuple) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """This rank's slice of step `step`'s images, timesteps and noise. The whole global batch is
    drawn on every rank, in the single-rank order; each keeps its slice."""
    device = data.device
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
    return x0, t, noise


class _FiniteGuard:
    """Tracks the first non-finite loss on the device (no per-step host sync) and raises
    NonFiniteError, after closing the progress bar, when asked to check."""

    def __init__(self, device: torch.device, params: list[torch.Tensor]):
        self.first_bad = torch.full((), -1, dtype=torch.long, device=device)
        self.bad_loss = torch.zeros((), device=device)
        self.params = params

    def record(self, loss: torch.Tensor, step: int) -> None:
        lost = ~torch.isfinite(loss) & (self.first_bad < 0)
        self.first_bad.masked_fill_(lost, step)
        self.bad_loss.copy_(torch.where(lost, loss.float(), self.bad_loss))

    def check(self, done: int, bar) -> None:
        """Raise if a loss so far, or the weights now, are NaN/inf (one host sync)."""
        if int(self.first_bad) >= 0:
            bar.close()  # the error line comes after the progress bar, not inside it
            raise NonFiniteError(f"loss is {float(self.bad_loss)} at step {int(self.first_bad) + 1}; "
                                 f"stopped, nothing saved (last good checkpoint kept)")
        if not bool(torch.stack([torch.isfinite(p).all() for p in self.params]).all()):
            bar.close()
            raise NonFiniteError(f"weights turned non-finite by step {done} (losses finite so far); "
                                 f"stopped, nothing saved (last good checkpoint kept)")


def _stepper(model: nn.Module, ema: nn.Module, bound, mask: Optional[Mask], diffusion: Diffusion, cfg: TrainConfig,
             opt, sched, world: int, loss_weight: float, desc: str, work: int) -> Callable[..., torch.Tensor]:
    """One training step (forward, backward, optimizer, mask, EMA) as a function of the batch; returns
    the detached loss."""
    device = next(model.parameters()).device
    ema_params, params = list(ema.parameters()), list(model.parameters())
    ema_bound = mask.bind(ema) if mask is not None else None
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda"
                else torch.autocast("cpu", enabled=False))
    net = model
    if world > 1:
        # the U-Net has no buffers, so DDP's defaults add no per-step sync
        net = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    runner = maybe_compile(net, device, desc, work=work, worth=TRAIN_IMAGES_WORTH_COMPILING)

    def update() -> None:
        """The one place the mask is enforced during training: pruned weights get no gradient (so
        the clip norm and Adam's moments never see them), are zeroed again after the step, and the
        EMA copy, updated from the masked weights, is masked too."""
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

    def step(x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        def run(module) -> torch.Tensor:
            opt.zero_grad(set_to_none=True)
            with autocast:
                loss = diffusion.loss(module, x0, t, noise)
            (loss if world == 1 else loss * loss_weight).backward()
            return loss.detach()
        loss = runner.run(run)
        update()
        return loss
    return step


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
    type (pipeline.train.resume). `snapshot_steps`: model states kept after that many steps
    (`start_step` = the starting weights); `ema_snapshot_steps`: the same for the EMA copy.
    `stop_after` exists for tests of resumption; `after_step(step, model)` is called after every
    optimizer step (tests check ranks agree). Under torchrun every rank calls this with the same
    arguments; `cfg.batch_size` is the global batch, split over the ranks.
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
    make_optimizer = _optimizer_factory(model, device, cfg, start_step, steps)
    state, (opt, sched) = resume(checkpoint, fingerprint, start_step, steps, model, ema, make_optimizer(),
                                 make_optimizer, desc, main)
    start = state.start
    params = list(model.parameters())
    if start_step in snapshot_steps and start_step not in state.snapshots:
        state.snapshots[start_step] = cpu_state(model)
    # decided from the whole run, not what is left of it: a run resumed near its end takes the
    # same path (compiled or eager) as it started on
    step_fn = _stepper(model, ema, bound, mask, diffusion, cfg, opt, sched, world, loss_weight, desc,
                       work=(steps - start_step) * cfg.batch_size)

    running = torch.zeros((), device=device)
    guard = _FiniteGuard(device, params)
    window, t_window = 0, time.perf_counter()
    model.train()
    # dropout masks, like the noise, are drawn for the whole global batch and sliced
    set_dropout_rows(model, (cfg.batch_size, lo, hi))
    bar = tqdm(total=steps, initial=start, desc=desc, unit="step", disable=not (progress and main),
               dynamic_ncols=True, mininterval=1.0)
    shape = (cfg.batch_size, *data.shape[1:])
    for step in range(start, steps):
        loss = step_fn(*_draw_batch(data, diffusion, cfg, seed, step, lo, hi, hflip, shape))
        guard.record(loss, step)
        running += loss if world == 1 else loss * (loss_weight / world)
        window += 1
        done = step + 1
        if after_step is not None:
            after_step(done, model)
        if done in snapshot_steps:
            state.snapshots[done] = cpu_state(model)
        if done in ema_snapshot_steps:
            state.ema_snapshots[done] = cpu_state(ema)
        if done % cfg.log_every == 0 or done == steps:
            guard.check(done, bar)
            distributed.all_reduce_sum(running)  # the global batch's loss
            mean_loss = (running / window).item()  # host syncs: here, once per log window, and at checkpoints
            ips = window * cfg.batch_size / (time.perf_counter() - t_window)
            state.history.append({"step": done, "loss": mean_loss, "lr": sched.get_last_lr()[0]})
            bar.set_postfix(loss=f"{mean_loss:.4f}", img_s=f"{ips:.0f}")
            running.zero_()
            window, t_window = 0, time.perf_counter()
        bar.update(1)
        if checkpoint is not None and (done % cfg.checkpoint_every == 0 or done == steps):
            guard.check(done, bar)  # every rank checks, so all stop together
            if main:
                save_checkpoint(checkpoint, fingerprint, done, model, ema, opt, sched, state)
        if stop_after is not None and done >= stop_after:
            break
    bar.close()
    guard.check(done if steps > start else start, bar)
    set_dropout_rows(model, None)
    model.eval()
    return TrainResult(model=model, ema=ema, history=state.history, snapshots=state.snapshots,
                       ema_snapshots=state.ema_snapshots, resumed_from=start)
