"""The study's training recipe from params: how a dense run or a masked retrain is identified
(its checkpoint fingerprint), trained and written. The `dense`, `retrain` and `control` stages use it,
and the budget stages with the params of the longer budget (`Params.at_budget`).
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd

from pipeline.core import paths
from pipeline.core.config import Params
from pipeline.core.io import load_torch, save_text, save_torch
from pipeline.data.prepared import load_dataset
from pipeline.ddpm.diffusion import Diffusion
from pipeline.runtime import distributed
from pipeline.runtime.device import configure_threads, pick_device
from pipeline.sparsity import tickets
from pipeline.sparsity.masks import Mask
from pipeline.sparsity.rewind import theta0_for
from pipeline.train.loop import TrainResult, train


def write_training_outputs(out: Path, result: TrainResult, mask: Mask | None, **meta) -> bool:
    """Write a trained net's outputs on rank 0; False on the other ranks. No sample grid here: the
    eval stage samples every trained net anyway (and the report uses its grid)."""
    if not distributed.is_main():
        return False
    tickets.save_ticket(out / "model.pt", result.model, result.ema, mask, **meta)
    save_text(pd.DataFrame(result.history).to_csv(index=False), out / "loss.csv")
    return True


def training_fingerprint(params: Params, *extra) -> str:
    """Identifies a training run: its recipe, the prepared training images, plus whatever else
    decides it (seed, input files). train() adds the device type."""
    images = digest(paths.prepared_path("train"))
    return (params.fingerprint("model", "diffusion", "train") + f"-hflip{int(params.data.hflip)}-{images}-"
            + "-".join(map(str, extra)))


def digest(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()[:16]


def train_dense(params: Params, seed: int, out: Path, checkpoint: Path, desc: str) -> None:
    """Train theta0 (shared, or the seed's own: model.theta0) densely with data-order seed `seed` for
    train.steps; write it under `out` with theta_k (the weights after rewind.step steps) as
    rewind.pt for late rewinding and the EMA weights at train.convergence_checks as ema_checks.pt."""
    configure_threads()
    device = pick_device()
    model = tickets.new_model(params).to(device)
    theta0 = paths.init_dir() / "theta0.pt"  # model.theta0 = per_seed: the seed's own draw (its fingerprint: model.*)
    model.load_state_dict({n: t.to(device) for n, t in theta0_for(params, seed).items()})
    k = params.rewind.step
    checks = params.train.check_steps()[:-1]  # the end's EMA is model.pt's
    result = train(model, Diffusion(params.diffusion, device), load_dataset(params.data), params.train,
                   steps=params.train.steps, seed=seed, hflip=params.data.hflip, checkpoint=checkpoint,
                   fingerprint=training_fingerprint(params, "dense", seed, k, digest(theta0)),
                   snapshot_steps=(k,), ema_snapshot_steps=checks, desc=desc)
    if write_training_outputs(out, result, None, seed=seed, round=0):
        save_torch(result.snapshots[k], out / "rewind.pt")  # theta_k for late rewinding
        # EMA weights part-way through, for the eval's convergence check of the baseline
        save_torch({step: result.ema_snapshots[step] for step in checks}, out / "ema_checks.pt")


def train_masked(params: Params, seed: int, mask_path: Path, weights_path: Path, out: Path, checkpoint: Path,
                 tag: str, desc: str, start_step: int | None = None, **meta) -> None:
    """Train the masked net at `weights_path` with the ticket recipe (the dense run's data seed,
    from `start_step`, by default params.start_step(), to train.steps) and save it under `out` in
    save_ticket's format."""
    start_step = params.start_step() if start_step is None else start_step
    configure_threads()
    device = pick_device()
    mask = Mask.from_state_dict(load_torch(mask_path)).to(device)
    model = tickets.new_model(params).to(device)
    model.load_state_dict(load_torch(weights_path, map_location=device))
    result = train(model, Diffusion(params.diffusion, device), load_dataset(params.data), params.train,
                   steps=params.train.steps, seed=seed, start_step=start_step, mask=mask,
                   hflip=params.data.hflip, checkpoint=checkpoint,
                   fingerprint=training_fingerprint(params, tag, seed, start_step, digest(mask_path), digest(weights_path)),
                   desc=desc)
    out.mkdir(parents=True, exist_ok=True)
    write_training_outputs(out, result, mask, seed=seed, **meta)
