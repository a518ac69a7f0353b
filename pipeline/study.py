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
from .diffusion import Diffusion, sample_images
from .images import save_grid
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


def _write_training_outputs(params: Params, out, result, diffusion: Diffusion, mask, seed: int, k: int) -> bool:
    """Sample the grid (every rank helps), then write the outputs on rank 0; False on other ranks."""
    shape = (params.data.channels, params.data.image_size, params.data.image_size)
    images = sample_images(diffusion, result.ema, params.train.sample_grid, shape, params.train.sample_steps,
                           batch_size=params.eval.batch_size, seed=params.eval.seed, progress=False)
    if not distributed.is_main():
        return False
    A.save_ticket(out / "model.pt", result.model, result.ema, mask, seed=seed, round=k)
    save_text(pd.DataFrame(result.history).to_csv(index=False), out / "loss.csv")
    save_grid(images, out / "samples.png")
    return True


def _training_fingerprint(params: Params, *extra) -> str:
    """Identifies a training run: its recipe plus whatever else decides it (seed, input files)."""
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
    if _write_training_outputs(params, out, result, diffusion, None, seed, 0):
        save_torch(result.snapshots[k], out / "rewind.pt")  # theta_k for late rewinding


def _layer_weights(params: Params) -> dict[str, float] | None:
    if params.sparsity.schedule != "layerwise":
        return None
    return load_json(A.layer_rates_path())["weights"]


def run_prune(params: Params, seed: int, k: int) -> None:
    prev = k - 1
    model, _, mask, _ = A.load_ticket(A.train_dir(seed, prev) / "model.pt", params)
    if mask is None:  # round 1 prunes the dense net
        mask = Mask.dense(model, params.sparsity.include, params.sparsity.exclude)
    weights = dict(model.named_parameters())
    new = prune_round(weights, mask, params.sparsity.schedule, params.sparsity.rate,
                      layer_weights=_layer_weights(params), max_layer_rate=params.similarity.max_layer_rate,
                      generator=torch.Generator().manual_seed(_seed_for(seed, k)))
    assert new.is_subset_of(mask), "a pruned mask must never revive a weight"
    out = A.prune_dir(seed, k)
    save_torch(new.state_dict(), out / "mask.pt")
    report = new.report()
    report.update(seed=seed, round=k, schedule=params.sparsity.schedule, rate=params.sparsity.rate)
    save_json(report, out / "mask.json")
    tqdm.write(f"prune seed {seed} round {k} ({params.sparsity.schedule}): "
               f"{report['kept']:,}/{report['total']:,} prunable weights kept, sparsity {report['sparsity']:.2%}")


def rewound_state(params: Params, seed: int, k: int, mask: Mask) -> dict[str, torch.Tensor]:
    """The weights a round restarts from: theta0, theta_k or a fresh draw, times the mask."""
    mode = params.rewind.mode
    if mode == "init":
        state = load_torch(A.init_dir() / "theta0.pt")
    elif mode == "checkpoint":
        state = load_torch(A.train_dir(seed, 0) / "rewind.pt")
    else:  # reinit control: a new random draw of every weight
        torch.manual_seed(_seed_for(params.model.init_seed, 7919, seed, k))
        state = A.new_model(params).state_dict()
    state = {n: t.clone() for n, t in state.items()}
    for n in mask:
        state[n].mul_(mask[n].to(state[n].dtype))
    return state


def run_rewind(params: Params, seed: int, k: int) -> None:
    mask = Mask.from_state_dict(load_torch(A.prune_dir(seed, k) / "mask.pt"))
    state = rewound_state(params, seed, k, mask)
    out = A.rewind_dir(seed, k)
    save_torch(state, out / "weights.pt")
    save_json({"mode": params.rewind.mode, "step": params.rewind.step if params.rewind.mode == "checkpoint" else 0,
               "seed": seed, "round": k}, out / "rewind.json")


def run_retrain(params: Params, seed: int, k: int) -> None:
    configure_threads(params.train.threads)
    device = pick_device()
    mask = Mask.from_state_dict(load_torch(A.prune_dir(seed, k) / "mask.pt")).to(device)
    model = A.new_model(params).to(device)
    model.load_state_dict(load_torch(A.rewind_dir(seed, k) / "weights.pt", map_location=device))
    diffusion = Diffusion(params.diffusion, device)
    data = load_dataset(params.data)
    steps = params.retrain_steps()
    result = train(model, diffusion, data, params.train, steps=steps, seed=seed, mask=mask,
                   hflip=params.data.hflip, checkpoint=A.checkpoint_path(seed, k),
                   fingerprint=_training_fingerprint(params, "retrain", seed, k,
                                                     _digest(A.prune_dir(seed, k) / "mask.pt"),
                                                     _digest(A.rewind_dir(seed, k) / "weights.pt")),
                   desc=f"retrain seed {seed} round {k}")
    _write_training_outputs(params, A.train_dir(seed, k), result, diffusion, mask, seed, k)
