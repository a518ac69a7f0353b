"""Controls of a winning ticket: what a ticket must beat to be more than a lucky sparse architecture.

For the ticket of IMP round k of a seed (its mask `artifacts/imp/s{seed}/r{k}/prune/mask.pt`):

- reinit: the ticket's exact mask, every weight freshly drawn (seeded) instead of rewound;
- random: a random mask with exactly the ticket's per-layer kept counts (seeded), rewound like the
  ticket (same rewind.mode and point).

Each is trained with the ticket's recipe (same data seed, same end step) and saved like a ticket.
The random control starts where the ticket does (step k under late rewinding); the reinit control has
no trained weights to continue, so it gets the dense run's whole budget from step 0, warm-up
included: a reinit control started at step k at full learning rate would credit the ticket with the
k dense steps its start had. Controls live beside the chain and never feed it.
"""
from __future__ import annotations

import torch

from pipeline.core import paths
from pipeline.core.config import ConfigError, Params
from pipeline.core.io import load_torch
from pipeline.sparsity.masks import Mask
from pipeline.sparsity.pruning import remove_lowest
from pipeline.sparsity.rewind import rewound_state, seed_for

RANDOM_MASK_STREAM = 15485863  # keeps the random control's draw apart from every other seeded draw


def random_mask_like(ticket: Mask, generator: torch.Generator) -> Mask:
    """A uniformly random mask over the same layers with exactly `ticket`'s per-layer kept counts."""
    full = Mask({n: torch.ones_like(ticket[n]) for n in ticket})
    kept = ticket.kept_counts()
    scores = {n: torch.rand(ticket[n].numel(), generator=generator).to(ticket[n].device) for n in ticket}
    return remove_lowest(full, scores, {n: ticket[n].numel() - kept[n] for n in ticket})


def control_start(params: Params, kind: str, seed: int, k: int) -> tuple[Mask, dict[str, torch.Tensor]]:
    """(mask, start weights) of the `kind` control of seed `seed`'s round-k ticket."""
    ticket = Mask.from_state_dict(load_torch(paths.prune_dir(seed, k) / "mask.pt"))
    if kind == "reinit":
        return ticket, rewound_state(params, seed, k, ticket, mode="reinit")
    if kind == "random":
        mask = random_mask_like(ticket, torch.Generator().manual_seed(seed_for(RANDOM_MASK_STREAM, seed, k)))
        return mask, rewound_state(params, seed, k, mask)
    raise ConfigError(f"unknown control kind {kind!r}; expected one of reinit, random")
