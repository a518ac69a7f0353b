"""Controls of a winning ticket: what a ticket must beat to be more than a lucky sparse architecture.

For the ticket of IMP round k of a seed (its mask `artifacts/imp/s{seed}/r{k}/prune/mask.pt`):

- reinit: the ticket's exact mask, every weight freshly drawn (seeded) instead of rewound;
- random: a random mask with exactly the ticket's per-layer kept counts (seeded), rewound like the
  ticket (same rewind.mode and point).

Each is trained with the ticket's recipe and budget (same data seed, same steps, same start step
for late rewinding) and saved like a ticket. Controls live beside the chain and never feed it.
"""
from __future__ import annotations

import torch
from tqdm.auto import tqdm

from . import artifacts as A
from .config import ConfigError, Params
from .io import load_torch, save_json, save_torch
from .masks import Mask
from .pruning import remove_lowest
from .study import _seed_for, retrain_masked, retrain_start_step, rewound_state

RANDOM_MASK_STREAM = 15485863  # keeps the random control's draw apart from every other seeded draw


def random_mask_like(ticket: Mask, generator: torch.Generator) -> Mask:
    """A uniformly random mask over the same layers with exactly `ticket`'s per-layer kept counts."""
    full = Mask({n: torch.ones_like(ticket[n]) for n in ticket})
    kept = ticket.kept_counts()
    scores = {n: torch.rand(ticket[n].numel(), generator=generator).to(ticket[n].device) for n in ticket}
    return remove_lowest(full, scores, {n: ticket[n].numel() - kept[n] for n in ticket})


def control_start(params: Params, kind: str, seed: int, k: int) -> tuple[Mask, dict[str, torch.Tensor]]:
    """(mask, start weights) of the `kind` control of seed `seed`'s round-k ticket."""
    ticket = Mask.from_state_dict(load_torch(A.prune_dir(seed, k) / "mask.pt"))
    if kind == "reinit":
        return ticket, rewound_state(params, seed, k, ticket, mode="reinit")
    if kind == "random":
        mask = random_mask_like(ticket, torch.Generator().manual_seed(_seed_for(RANDOM_MASK_STREAM, seed, k)))
        return mask, rewound_state(params, seed, k, mask)
    raise ConfigError(f"unknown control kind {kind!r}; expected one of reinit, random")


def run_control(params: Params, kind: str, seed: int, k: int) -> None:
    # reads no controls.* or imp.* param: listing another round or kind leaves this control cached
    mask, state = control_start(params, kind, seed, k)
    out = A.control_dir(kind, seed, k)
    save_torch(mask.state_dict(), out / "mask.pt")
    report = mask.report()
    report.update(kind=kind, seed=seed, round=k, schedule=params.sparsity.schedule)
    save_json(report, out / "mask.json")
    save_torch(state, out / "weights.pt")
    rewind = "reinit" if kind == "reinit" else params.rewind.mode
    save_json({"kind": kind, "mode": rewind, "start_step": retrain_start_step(params), "seed": seed, "round": k},
              out / "rewind.json")
    tqdm.write(f"control {kind} seed {seed} round {k}: {report['kept']:,}/{report['total']:,} prunable "
               f"weights kept, start weights: {rewind}")
    retrain_masked(params, seed, out / "mask.pt", out / "weights.pt", A.control_train_dir(kind, seed, k),
                   A.control_checkpoint_path(kind, seed, k), tag=f"control-{kind}-{k}",
                   desc=f"control {kind} seed {seed} round {k}", round=k, kind=kind)
