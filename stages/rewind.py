"""DVC stage 'rewind': round k's surviving weights back to theta0 (`init`), theta_k
(`checkpoint`) or a fresh draw (`reinit`, a control), times the mask.

Usage: python -m stages.rewind <seed> <k>
"""
from __future__ import annotations

from pipeline.app.stage import run_stage
from pipeline.core import paths
from pipeline.core.config import Params
from pipeline.core.io import load_torch, save_json, save_torch
from pipeline.sparsity.masks import Mask
from pipeline.sparsity.rewind import rewound_state


def run_rewind(params: Params, seed: int, k: int) -> None:
    mask = Mask.from_state_dict(load_torch(paths.prune_dir(seed, k) / "mask.pt"))
    out = paths.rewind_dir(seed, k)
    save_torch(rewound_state(params, seed, k, mask), out / "weights.pt")
    save_json({"mode": params.rewind.mode, "step": params.start_step(), "seed": seed, "round": k},
              out / "rewind.json")


if __name__ == "__main__":
    run_stage(run_rewind, "seed", "k")
