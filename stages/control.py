"""DVC stage 'control': the `kind` control (reinit | random) of seed `seed`'s round-k ticket,
trained with the ticket's recipe and budget (pipeline.sparsity.controls says what each is).

Usage: python -m stages.control <kind> <seed> <k>
"""
from __future__ import annotations

from tqdm.auto import tqdm

from pipeline.app.stage import run_stage
from pipeline.core import paths
from pipeline.core.config import Params
from pipeline.core.io import save_json, save_torch
from pipeline.sparsity.controls import control_start
from pipeline.train.recipe import train_masked


def run_control(params: Params, kind: str, seed: int, k: int) -> None:
    # reads no controls.* or imp.* param: listing another round or kind leaves this control cached
    mask, state = control_start(params, kind, seed, k)
    out = paths.control_dir(kind, seed, k)
    save_torch(mask.state_dict(), out / "mask.pt")
    report = mask.report()
    report.update(kind=kind, seed=seed, round=k, schedule=params.sparsity.schedule)
    save_json(report, out / "mask.json")
    save_torch(state, out / "weights.pt")
    rewind = "reinit" if kind == "reinit" else params.rewind.mode
    save_json({"kind": kind, "mode": rewind, "start_step": params.start_step(), "seed": seed, "round": k},
              out / "rewind.json")
    tqdm.write(f"control {kind} seed {seed} round {k}: {report['kept']:,}/{report['total']:,} prunable "
               f"weights kept, start weights: {rewind}")
    train_masked(params, seed, out / "mask.pt", out / "weights.pt", paths.control_train_dir(kind, seed, k),
                 paths.control_checkpoint_path(kind, seed, k), tag=f"control-{kind}-{k}",
                 desc=f"control {kind} seed {seed} round {k}", round=k, kind=kind)


if __name__ == "__main__":
    run_stage(run_control, "seed", "k", text=("kind",))
