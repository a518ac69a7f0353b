"""Run by tests/test_distributed.py under torchrun (gloo, one process per rank): a tiny masked
retrain, its resumption from a rank-0 checkpoint, and sharded sampling. Each rank saves what it saw
to <out>/rank{r}.pt; the test compares those with a single-process run of `setup`'s same inputs.

    python -m torch.distributed.run --standalone --nproc-per-node 2 tests/runtime/ddp_worker.py <out>
"""
from __future__ import annotations

import hashlib
import sys
import time
from pathlib import Path

import torch

from conftest import TINY, merge
from pipeline.sparsity import tickets
from pipeline.runtime import distributed
from pipeline.train import loop as training
from pipeline.train import resume as checkpoints
from pipeline.app.params import parse_params
from pipeline.ddpm.diffusion import Diffusion, sample_images
from pipeline.sparsity.masks import Mask
from pipeline.sparsity.pruning import prune_round

STEPS, STOP_AFTER = 6, 3
DROPOUT = 0.1  # the GPU presets' rate
SAMPLES = dict(n=7, shape=(1, 8, 8), steps=3, batch_size=2, seed=5)


def setup(dropout: float = 0.0):
    """(params, start weights, mask, diffusion, data): identical on every rank and in the test."""
    # batch 7 over 2 ranks: shares of 4 and 3 test the weighting of uneven slices
    params = parse_params(merge(TINY, {"train": {"batch_size": 7, "lr": 0.01, "warmup_steps": 0,
                                                 "checkpoint_every": 2, "log_every": 1},
                                       "model": {"dropout": dropout}}))
    torch.manual_seed(0)
    model = tickets.new_model(params)
    mask = prune_round(dict(model.named_parameters()), Mask.dense(model), "uniform", 0.7)
    mask.apply_(model)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    data = torch.rand(40, 1, 8, 8, generator=torch.Generator().manual_seed(1)) * 2 - 1
    return params, start, mask, Diffusion(params.diffusion), data


def weights_digest(model: torch.nn.Module) -> str:
    blob = torch.cat([p.detach().flatten() for p in model.parameters()]).numpy().tobytes()
    return hashlib.sha256(blob).hexdigest()


def run(params, start, mask, diffusion, data, checkpoint: Path | None = None, stop_after=None):
    model = tickets.new_model(params)
    model.load_state_dict(start)
    digests: list[str] = []
    result = training.train(model, diffusion, data, params.train, steps=STEPS, seed=3, mask=mask,
                            checkpoint=checkpoint, fingerprint="ddp-test", progress=False,
                            stop_after=stop_after, after_step=lambda step, m: digests.append(weights_digest(m)))
    return result, digests


def main(out: Path) -> None:
    torch.set_num_threads(1)
    assert distributed.init_from_env() and distributed.world_size() > 1, "run me under torchrun"
    rank = distributed.rank()
    writes: list[str] = []
    save = checkpoints.save_torch
    checkpoints.save_torch = lambda obj, path: (writes.append(str(path)), save(obj, path))[1]

    params, start, mask, diffusion, data = setup()
    full, digests = run(params, start, mask, diffusion, data)
    ckpt = out / "ck.pt"
    run(params, start, mask, diffusion, data, checkpoint=ckpt, stop_after=STOP_AFTER)  # "killed" at step 3
    distributed.all_reduce_sum(torch.zeros(1))  # every rank past the kill before anyone resumes
    resumed, _ = run(params, start, mask, diffusion, data, checkpoint=ckpt)
    images = sample_images(diffusion, full.ema, progress=False, **SAMPLES)
    dropout, _ = run(*setup(dropout=DROPOUT))
    marker = out / "fetched"

    def fetch(first: bool) -> tuple[bool, bool]:
        if distributed.rank() == 0:
            time.sleep(0.5)  # a slow download: the others must wait for it
            marker.write_text("done")
        return first, marker.exists()
    turn = distributed.in_turn(fetch)
    torch.save({"rank": rank, "world": distributed.world_size(), "digests": digests,
                "model": full.model.state_dict(), "ema": full.ema.state_dict(),
                "loss": [h["loss"] for h in full.history], "resumed_from": resumed.resumed_from,
                "resumed_model": resumed.model.state_dict(), "resumed_loss": [h["loss"] for h in resumed.history],
                "checkpoint_writes": writes, "images": images, "in_turn": turn,
                "dropout_model": dropout.model.state_dict(), "dropout_loss": [h["loss"] for h in dropout.history]},
               out / f"rank{rank}.pt")
    distributed.shutdown()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
