"""DVC stage 'control': the `kind` control (reinit | random) of seed `seed`'s round-k ticket,
trained with the ticket's recipe (reinit: the dense run's budget from step 0) (pipeline.sparsity.controls says what each is).

Usage: python -m stages.control <kind> <seed> <k>
"""
from __future__ import annotations

from tqdm.auto import tqdm

from pipeline.app.stage import run_stage
from pipeline.core import paths
from pipeline.core.config import Params
from pipeline.core.io import save_json, save_torch
from pipeline.runtime import distributed
from pipeline.sparsity.controls import control_start
from pipeline.train.recipe import train_masked


def write_start(params: Params, kind: str, seed: int, k: int) -> None:
    """The control's mask and start weights, written where train_masked reads them."""
    mask, state = control_start(params, kind, seed, k)
    out = paths.control_dir(kind, seed, k)
    save_torch(mask.state_dict(), out / "mask.pt")
    report = mask.report()
    report.update(kind=kind, seed=seed, round=k, schedule=params.sparsity.schedule)
    save_json(report, out / "mask.json")
    save_torch(state, out / "weights.pt")
    rewind = "reinit" if kind == "reinit" else params.rewind.mode
    save_json({"kind": kind, "mode": rewind, "start_step": params.start_step(rewind), "seed": seed, "round": k},
              out / "rewind.json")
    tqdm.write(f"control {kind} seed {seed} round {k}: {report['kept']:,}/{report['total']:,} prunable "
               f"weights kept, start weights: {rewind}")


def run_control(params: Params, kind: str, seed: int, k: int) -> None:
    # reads no controls.* or imp.* param: listing another round or kind leaves this control cached
    out = paths.control_dir(kind, seed, k)
    # under torchrun rank 0 writes the start, the other ranks then read it like a ticket's
    distributed.main_first(lambda: write_start(params, kind, seed, k))
    # reinit has no trained weights to continue from: it gets the dense run's whole budget from step 0
    # (warm-up included), so the ticket is not credited with the k dense steps its start had
    start = params.start_step("reinit" if kind == "reinit" else params.rewind.mode)
    train_masked(params, seed, out / "mask.pt", out / "weights.pt", paths.control_train_dir(kind, seed, k),
                 paths.control_checkpoint_path(kind, seed, k), tag=f"control-{kind}-{k}", start_step=start,
                 desc=f"control {kind} seed {seed} round {k}", round=k, kind=kind)


if __name__ == "__main__":
    run_stage(run_control, "seed", "k", text=("kind",), data_parallel=True)
