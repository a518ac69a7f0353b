"""DVC stage 'retrain_budget': the ticket of round budget.round (its mask from the chain's prune stage)
rewound like the chain, theta_k taken from the longer dense run (dense_budget), and retrained at
budget.factor x train.steps with the ticket recipe.

Usage: python -m stages.retrain_budget <seed>
"""
from __future__ import annotations

from pipeline.app.stage import run_stage
from pipeline.core import paths
from pipeline.core.config import Params
from pipeline.core.io import load_torch, save_json, save_torch
from pipeline.runtime import distributed
from pipeline.sparsity.masks import Mask
from pipeline.sparsity.rewind import rewound_state
from pipeline.train.recipe import train_masked


def write_start(params: Params, seed: int, k: int) -> None:
    """The rewound start weights, written into the stage's output where train_masked reads them."""
    mask = Mask.from_state_dict(load_torch(paths.prune_dir(seed, k) / "mask.pt"))
    out = paths.budget_train_dir(seed, k)
    save_torch(rewound_state(params, seed, k, mask, dense=paths.budget_train_dir(seed, 0)), out / "start.pt")
    save_json({"mode": params.rewind.mode, "start_step": params.start_step(), "steps": params.train.steps,
               "seed": seed, "round": k}, out / "rewind.json")


def run_retrain_budget(params: Params, seed: int) -> None:
    long, k = params.at_budget(), params.budget.round
    out = paths.budget_train_dir(seed, k)
    distributed.main_first(lambda: write_start(long, seed, k))  # the other ranks read rank 0's start
    train_masked(long, seed, paths.prune_dir(seed, k) / "mask.pt", out / "start.pt", out,
                 paths.budget_checkpoint_path(seed, k), tag=f"retrain-{k}",
                 desc=f"retrain seed {seed} round {k} at {long.train.steps} steps", round=k)


if __name__ == "__main__":
    run_stage(run_retrain_budget, "seed", data_parallel=True)
