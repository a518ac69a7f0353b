"""Where a round restarts from: theta0 (shared or the seed's own), theta_k (late rewinding) or a fresh
draw, times the mask."""
from __future__ import annotations

from pathlib import Path

import torch

from pipeline.core import paths
from pipeline.core.config import Params
from pipeline.core.io import load_torch
from pipeline.sparsity import tickets
from pipeline.sparsity.masks import Mask


def seed_for(*parts: int) -> int:
    """A seed derived from integers (seed, round, stream), distinct for distinct tuples in practice."""
    out = 0
    for p in parts:
        out = out * 1_000_003 + int(p)
    return out % (2**31 - 1)


THETA0_STREAM = 104729  # keeps a seed's own theta0 draw apart from every other seeded draw


def theta0_for(params: Params, seed: int) -> dict[str, torch.Tensor]:
    """The theta0 replicate seed `seed` starts from: the init stage's shared one, or (model.theta0 =
    per_seed) the seed's own draw, derived from model.init_seed and the seed."""
    if params.model.theta0 == "shared":
        return load_torch(paths.init_dir() / "theta0.pt")
    torch.manual_seed(seed_for(params.model.init_seed, THETA0_STREAM, seed))
    return tickets.new_model(params).state_dict()


def reinit_draw(params: Params, seed: int, k: int) -> dict[str, torch.Tensor]:
    """A fresh random draw of every weight for round k of seed `seed` (the reinit control)."""
    torch.manual_seed(seed_for(params.model.init_seed, 7919, seed, k))
    return tickets.new_model(params).state_dict()


def rewound_state(params: Params, seed: int, k: int, mask: Mask, mode: str | None = None,
                  dense: Path | None = None) -> dict[str, torch.Tensor]:
    """The weights a round restarts from: theta0, theta_k or a fresh draw (`mode`, by default
    rewind.mode), times the mask. theta_k comes from the dense run in folder `dense` (by default the
    chain's round 0; the budget check passes its longer dense run)."""
    mode = mode or params.rewind.mode
    if mode == "init":
        state = theta0_for(params, seed)
    elif mode == "checkpoint":
        state = load_torch((dense or paths.train_dir(seed, 0)) / "rewind.pt")
    else:  # reinit: a new random draw of every weight
        state = reinit_draw(params, seed, k)
    state = {n: t.clone() for n, t in state.items()}
    for n in mask:
        state[n].mul_(mask[n].to(state[n].dtype))
    return state
