"""What each DVC stage of the study does: read inputs, call the library, write outputs.

The files under stages/ only parse their arguments and call one function here.
"""
from __future__ import annotations

import hashlib

import pandas as pd
import torch
from tqdm.auto import tqdm

from . import artifacts as A
from . import distributed
from .config import Params
from .data import load_dataset
from .diffusion import Diffusion
from .io import load_json, load_torch, save_json, save_text, save_torch
from .masks import Mask
from .pruning import prune_round
from .training import configure_threads, pick_device, train


def _seed_for(*parts: int) -> int:
    out = 0
    for p in parts:
        out = out * 1_000_003 + int(p)
    return out % (2**31 - 1)


def run_init(params: Params) -> None:
    torch.manual_seed(params.model.init_seed)
    model = A.new_model(params)
    save_torch(model.state_dict(), A.init_dir() / "theta0.pt")
    n = sum(p.numel() for p in model.parameters())
    save_json({"parameters": n, "init_seed": params.model.init_seed}, A.init_dir() / "model.json")
    tqdm.write(f"init: U-Net with {n:,} parameters -> {A.init_dir() / 'theta0.pt'}")


def _write_training_outputs(out, result, mask, **meta) -> bool:
    """Write a trained net's outputs on rank 0; False on the other ranks. No sample grid here: the
    eval stage samples every trained net anyway (and the report uses its grid)."""
    if not distributed.is_main():
        return False
    A.save_ticket(out / "model.pt", result.model, result.ema, mask, **meta)
    save_text(pd.DataFrame(result.history).to_csv(index=False), out / "loss.csv")
    return True


def _training_fingerprint(params: Params, *extra) -> str:
    """Identifies a training run: its recipe plus whatever else decides it (seed, input files).
    train() adds the device type."""
    return params.fingerprint("data", "model", "diffusion", "train") + "-" + "-".join(map(str, extra))


def _digest(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()[:16]


def run_dense(params: Params, seed: int) -> None:
    configure_threads(params.train.threads)
    device = pick_device()
    model = A.new_model(params).to(device)
    model.load_state_dict(load_torch(A.init_dir() / "theta0.pt", map_location=device))
    diffusion = Diffusion(params.diffusion, device)
    data = load_dataset(params.data)
    k = params.rewind.step
    result = train(model, diffusion, data, params.train, steps=params.train.steps, seed=seed,
                   hflip=params.data.hflip, checkpoint=A.checkpoint_path(seed, 0),
                   fingerprint=_training_fingerprint(params, "dense", seed, k, _digest(A.init_dir() / "theta0.pt")), snapshot_steps=(k,),
                   desc=f"dense seed {seed}")
    out = A.train_dir(seed, 0)
    if _write_training_outputs(out, result, None, seed=seed, round=0):
        save_torch(result.snapshots[k], out / "rewind.pt")  # theta_k for late rewinding


def run_prune(params: Params, seed: int, k: int) -> None:
    prev = k - 1
    model, _, mask, _ = A.load_ticket(A.train_dir(seed, prev) / "model.pt", params)
    if mask is None:  # round 1 prunes the dense net
        mask = Mask.dense(model, params.sparsity.include, params.sparsity.exclude)
    weights = dict(model.named_parameters())
    # what the schedule needs from the layer_rates stage (dvc.yaml: a file per schedule, of which
    # only layerwise's ever changes; the others need nothing)
    extra = {}
    if params.sparsity.schedule == "layerwise":
        rates = load_json(A.schedule_rates_path("layerwise"))
        extra = {"layer_weights": rates["layer_weights"], "max_layer_rate": rates["max_layer_rate"]}
    new = prune_round(weights, mask, params.sparsity.schedule, params.sparsity.rate,
                      generator=torch.Generator().manual_seed(_seed_for(seed, k)), **extra)
    assert new.is_subset_of(mask), "a pruned mask must never revive a weight"
    out = A.prune_dir(seed, k)
    save_torch(new.state_dict(), out / "mask.pt")
    report = new.report()
    report.update(seed=seed, round=k, schedule=params.sparsity.schedule, rate=params.sparsity.rate)
    save_json(report, out / "mask.json")
    tqdm.write(f"prune seed {seed} round {k} ({params.sparsity.schedule}): "
               f"{report['kept']:,}/{report['total']:,} prunable weights kept, sparsity {report['sparsity']:.2%}")


def reinit_draw(params: Params, seed: int, k: int) -> dict[str, torch.Tensor]:
    """A fresh random draw of every weight for round k of seed `seed` (the reinit control)."""
    torch.manual_seed(_seed_for(params.model.init_seed, 7919, seed, k))
    return A.new_model(params).state_dict()


def rewound_state(params: Params, seed: int, k: int, mask: Mask, mode: str | None = None) -> dict[str, torch.Tensor]:
    """The weights a round restarts from: theta0, theta_k or a fresh draw (`mode`, by default
    rewind.mode), times the mask."""
    mode = mode or params.rewind.mode
    if mode == "init":
        state = load_torch(A.init_dir() / "theta0.pt")
    elif mode == "checkpoint":
        state = load_torch(A.train_dir(seed, 0) / "rewind.pt")
    else:  # reinit: a new random draw of every weight
        state = reinit_draw(params, seed, k)
    state = {n: t.clone() for n, t in state.items()}
    for n in mask:
        state[n].mul_(mask[n].to(state[n].dtype))
    return state


def retrain_start_step(params: Params) -> int:
    """Late rewinding continues the dense run from step k; every other mode starts at step 0."""
    return params.rewind.step if params.rewind.mode == "checkpoint" else 0


def run_rewind(params: Params, seed: int, k: int) -> None:
    mask = Mask.from_state_dict(load_torch(A.prune_dir(seed, k) / "mask.pt"))
    state = rewound_state(params, seed, k, mask)
    out = A.rewind_dir(seed, k)
    save_torch(state, out / "weights.pt")
    save_json({"mode": params.rewind.mode, "step": params.rewind.step if params.rewind.mode == "checkpoint" else 0,
               "seed": seed, "round": k}, out / "rewind.json")


def retrain_masked(params: Params, seed: int, mask_path, weights_path, out, checkpoint, tag: str, desc: str,
                   **meta) -> None:
    """Train the masked net at `weights_path` with the ticket recipe (the dense run's data seed,
    from retrain_start_step to train.steps) and save it under `out` in save_ticket's format."""
    configure_threads(params.train.threads)
    device = pick_device()
    mask = Mask.from_state_dict(load_torch(mask_path)).to(device)
    model = A.new_model(params).to(device)
    model.load_state_dict(load_torch(weights_path, map_location=device))
    diffusion = Diffusion(params.diffusion, device)
    data = load_dataset(params.data)
    result = train(model, diffusion, data, params.train, steps=params.train.steps, seed=seed,
                   start_step=retrain_start_step(params), mask=mask, hflip=params.data.hflip,
                   checkpoint=checkpoint,
                   fingerprint=_training_fingerprint(params, tag, seed, _digest(mask_path), _digest(weights_path)),
                   desc=desc)
    out.mkdir(parents=True, exist_ok=True)
    _write_training_outputs(out, result, mask, seed=seed, **meta)


def run_retrain(params: Params, seed: int, k: int) -> None:
    retrain_masked(params, seed, A.prune_dir(seed, k) / "mask.pt", A.rewind_dir(seed, k) / "weights.pt",
                   A.train_dir(seed, k), A.checkpoint_path(seed, k), tag=f"retrain-{k}",
                   desc=f"retrain seed {seed} round {k}", round=k)
