"""DVC stage 'eval_budget': evaluate seed `seed`'s nets of the budget check, the dense run (round 0)
and round budget.round's ticket at budget.factor x train.steps, exactly like the chain's nets
(pipeline.evaluate.ticket_eval), so the report pairs them the same way.

Usage: python -m stages.eval_budget <seed>
"""
from __future__ import annotations

from pipeline.app.stage import run_stage
from pipeline.core import paths
from pipeline.core.config import Params
from pipeline.core.io import load_json, save_json
from pipeline.evaluate.ticket_eval import evaluate_net
from pipeline.runtime import distributed


def run_eval_budget(params: Params, seed: int) -> None:
    long = params.at_budget()
    for k in (0, params.budget.round):
        out = paths.budget_eval_dir(seed, k)
        evaluate_net(long, seed, k, where=(paths.budget_train_dir(seed, k), out))
        if distributed.is_main():  # which budget these numbers are at, for the report's reader
            metrics = load_json(out / "metrics.json")
            save_json({**metrics, "train_steps": long.train.steps, "budget_factor": params.budget.factor},
                      out / "metrics.json")


if __name__ == "__main__":
    run_stage(run_eval_budget, "seed", data_parallel=True)
