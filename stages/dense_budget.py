"""DVC stage 'dense_budget': seed `seed`'s dense run again at budget.factor x train.steps (same theta0
and data-order seed, warm-up kept, lr decay stretched to the longer budget), for the budget check of
the primary claim. Its theta_k is where the budget check's ticket rewinds to.

Usage: python -m stages.dense_budget <seed>
"""
from __future__ import annotations

from pipeline.app.stage import run_stage
from pipeline.core import paths
from pipeline.core.config import Params
from pipeline.train.recipe import train_dense


def run_dense_budget(params: Params, seed: int) -> None:
    long = params.at_budget()
    train_dense(long, seed, paths.budget_train_dir(seed, 0), paths.budget_checkpoint_path(seed, 0),
                desc=f"dense seed {seed} at {long.train.steps} steps")


if __name__ == "__main__":
    run_stage(run_dense_budget, "seed", data_parallel=True)
