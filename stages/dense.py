"""DVC stage 'dense': train theta0 (shared, or the seed's own: model.theta0) densely with data-order seed `seed`; keep theta_k (the weights
after rewind.step steps) for late rewinding, and the EMA weights at train.convergence_checks.

Usage: python -m stages.dense <seed>
"""
from __future__ import annotations

from pipeline.app.stage import run_stage
from pipeline.core import paths
from pipeline.core.config import Params
from pipeline.train.recipe import train_dense


def run_dense(params: Params, seed: int) -> None:
    train_dense(params, seed, paths.train_dir(seed, 0), paths.checkpoint_path(seed, 0), desc=f"dense seed {seed}")


if __name__ == "__main__":
    run_stage(run_dense, "seed", data_parallel=True)
