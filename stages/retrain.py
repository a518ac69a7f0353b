"""DVC stage 'retrain': round k's rewound weights trained with the dense recipe, the mask enforced.

Usage: python -m stages.retrain <seed> <k>
"""
from __future__ import annotations

from pipeline.app.stage import run_stage
from pipeline.core import paths
from pipeline.core.config import Params
from pipeline.train.recipe import train_masked


def run_retrain(params: Params, seed: int, k: int) -> None:
    train_masked(params, seed, paths.prune_dir(seed, k) / "mask.pt", paths.rewind_dir(seed, k) / "weights.pt",
                 paths.train_dir(seed, k), paths.checkpoint_path(seed, k), tag=f"retrain-{k}",
                 desc=f"retrain seed {seed} round {k}", round=k)


if __name__ == "__main__":
    run_stage(run_retrain, "seed", "k", data_parallel=True)
