"""DVC stage 'eval_dense': evaluate seed `seed`'s dense net (round 0) like every ticket.

Usage: python -m stages.eval_dense <seed>
"""
from __future__ import annotations

from pipeline.app.stage import run_stage
from pipeline.core.config import Params
from pipeline.evaluate.ticket_eval import evaluate_net


def run_eval_dense(params: Params, seed: int) -> None:
    evaluate_net(params, seed, 0)


if __name__ == "__main__":
    run_stage(run_eval_dense, "seed", data_parallel=True)
