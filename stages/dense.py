"""DVC stage 'dense': train theta0 (shared, or the seed's own: model.theta0) densely with data-order seed `seed`; keep theta_k (the weights
after rewind.step steps) for late rewinding, and the EMA weights at train.convergence_checks.

Usage: python -m stages.dense <seed>
"""
from __future__ import annotations

from pipeline.app.stage import run_stage
from pipeline.core import paths
from pipeline.core.config import Params
from pipeline.core.io import save_torch
from pipeline.data.prepared import load_dataset
from pipeline.ddpm.diffusion import Diffusion
from pipeline.runtime.device import configure_threads, pick_device
from pipeline.sparsity import tickets
from pipeline.sparsity.rewind import theta0_for
from pipeline.train.loop import train
from pipeline.train.recipe import digest, training_fingerprint, write_training_outputs


def run_dense(params: Params, seed: int) -> None:
    configure_threads()
    device = pick_device()
    model = tickets.new_model(params).to(device)
    theta0 = paths.init_dir() / "theta0.pt"  # model.theta0 = per_seed: the seed's own draw (its fingerprint: model.*)
    model.load_state_dict({n: t.to(device) for n, t in theta0_for(params, seed).items()})
    k = params.rewind.step
    checks = params.train.check_steps()[:-1]  # the end's EMA is model.pt's
    result = train(model, Diffusion(params.diffusion, device), load_dataset(params.data), params.train,
                   steps=params.train.steps, seed=seed, hflip=params.data.hflip,
                   checkpoint=paths.checkpoint_path(seed, 0),
                   fingerprint=training_fingerprint(params, "dense", seed, k, digest(theta0)),
                   snapshot_steps=(k,), ema_snapshot_steps=checks, desc=f"dense seed {seed}")
    out = paths.train_dir(seed, 0)
    if write_training_outputs(out, result, None, seed=seed, round=0):
        save_torch(result.snapshots[k], out / "rewind.pt")  # theta_k for late rewinding
        # EMA weights part-way through, for eval_dense's convergence check of the baseline
        save_torch({step: result.ema_snapshots[step] for step in checks}, out / "ema_checks.pt")


if __name__ == "__main__":
    run_stage(run_dense, "seed", data_parallel=True)
