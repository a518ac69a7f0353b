"""DVC stage 'eval': evaluate seed `seed`'s round-k ticket (pipeline.evaluate.ticket_eval).

Usage: python -m stages.eval <seed> <k>
"""
from __future__ import annotations

from pipeline.app.stage import run_stage
from pipeline.core.config import Params
from pipeline.evaluate.ticket_eval import evaluate_net


def run_eval(params: Params, seed: int, k: int) -> None:
    evaluate_net(params, seed, k)


if __name__ == "__main__":
    run_stage(run_eval, "seed", "k", data_parallel=True)
