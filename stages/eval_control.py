"""DVC stage 'eval_control': evaluate the `kind` control of seed `seed`'s round-k ticket exactly
like a ticket.

Usage: python -m stages.eval_control <kind> <seed> <k>
"""
from __future__ import annotations

from pipeline.app.stage import run_stage
from pipeline.core.config import Params
from pipeline.evaluate.ticket_eval import evaluate_net


def run_eval_control(params: Params, kind: str, seed: int, k: int) -> None:
    evaluate_net(params, seed, k, control=kind)


if __name__ == "__main__":
    run_stage(run_eval_control, "seed", "k", text=("kind",), data_parallel=True)
