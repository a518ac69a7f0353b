"""One IMP round: remove the lowest-scoring surviving weights, as many per layer as the schedule says.

Every schedule removes the same total per round, round(rate * kept), so schedules are always
compared at equal global sparsity.
They differ in where the removals land:

- uniform:   each layer loses rate * kept_l of its smallest-magnitude survivors (to one weight);
- global:    one magnitude threshold across all prunable layers (Frankle & Carbin);
- lamp:      one threshold on LAMP scores w_u^2 / sum_{|w_v| >= |w_u|} w_v^2 (Lee et al. 2021);
- layerwise: layer l loses a fraction p_l = min(p_max, c * weight_l) of its survivors, with
             per-layer weights from the ticket-similarity analysis and c set so the total matches;
- random:    uniform's per-layer counts, positions drawn at random (a control).

Selection is by index (stable sort), so the kept count is exact and ties never over-prune.
"""
from __future__ import annotations

from typing import Mapping, Optional

import torch

from pipeline.sparsity.masks import Mask

INF = float("inf")


def _scores_magnitude(weights: Mapping[str, torch.Tensor], mask: Mask) -> dict[str, torch.Tensor]:
    return {n: weights[n].detach().abs().float().flatten() for n in mask}


def _scores_lamp(weights: Mapping[str, torch.Tensor], mask: Mask) -> dict[str, torch.Tensor]:
    scores = {}
    for n in mask:
        keep = mask[n].flatten()
        sq = weights[n].detach().float().flatten().pow(2).masked_fill(~keep, 0.0)
        order = torch.argsort(sq, stable=True)
        sorted_sq = sq[order]
        # sum of the squares of every weight at least as large, in the sorted order
        suffix = sorted_sq.flip(0).cumsum(0).flip(0)
        s = torch.empty_like(sq)
        s[order] = sorted_sq / suffix.clamp_min(torch.finfo(sq.dtype).tiny)
        scores[n] = s
    return scores


def _scores_random(mask: Mask, generator: torch.Generator) -> dict[str, torch.Tensor]:
    return {n: torch.rand(mask[n].numel(), generator=generator).to(mask[n].device) for n in mask}


def uniform_counts(kept: Mapping[str, int], rate: float) -> dict[str, int]:
    """rate * kept_l per layer, rounded so the layers sum to exactly round(rate * sum kept_l)
    (largest remainders get the extra weight): every schedule can then remove the same total,
    so global sparsity after each round is independent of the schedule."""
    names = list(kept)
    exact = torch.tensor([rate * kept[n] for n in names], dtype=torch.float64)
    counts = torch.floor(exact)
    total = int(round(rate * sum(kept.values())))
    short = total - int(counts.sum().item())
    order = torch.argsort(exact - counts, descending=True, stable=True)[:max(short, 0)]
    counts[order] += 1
    return dict(zip(names, [int(c) for c in counts.tolist()]))


def _global_counts(scores: dict[str, torch.Tensor], mask: Mask, total: int) -> dict[str, int]:
    """How many of each layer fall among the `total` lowest scores over all surviving weights."""
    names = list(mask)
    flat = torch.cat([scores[n].masked_fill(~mask[n].flatten(), INF) for n in names])
    layer_id = torch.cat([torch.full((mask[n].numel(),), i, device=flat.device) for i, n in enumerate(names)])
    chosen = torch.argsort(flat, stable=True)[:total]
    counts = torch.bincount(layer_id[chosen], minlength=len(names)).tolist()
    return dict(zip(names, counts))


def layerwise_counts(kept: Mapping[str, int], layer_weights: Mapping[str, float], total: int,
                     max_layer_rate: float) -> dict[str, int]:
    """Per-layer removals proportional to kept_l * weight_l (capped at max_layer_rate of the layer),
    summing exactly to `total`."""
    names = [n for n in kept]
    missing = [n for n in names if n not in layer_weights]
    if missing:
        raise KeyError(f"layerwise rates lack layers {missing[:3]}; re-run the layer_rates stage")
    k = torch.tensor([float(kept[n]) for n in names], dtype=torch.float64)
    w = torch.tensor([max(float(layer_weights[n]), 0.0) for n in names], dtype=torch.float64)
    if float(w.max()) <= 0.0:
        w = torch.ones_like(w)
    # a zero weight would leave nowhere for a capped layer's excess to go; keep every layer prunable
    w = w.clamp_min(1e-6 * float(w.max()))
    cap = torch.floor(max_layer_rate * k)
    cap = torch.minimum(cap, (k - 1).clamp_min(0))  # every layer keeps at least one weight
    if total > cap.sum():
        raise ValueError(f"cannot remove {total} weights with max_layer_rate={max_layer_rate}")
    if total == 0:
        return {n: 0 for n in names}

    def removed(c: float) -> torch.Tensor:
        return torch.minimum(c * w * k, cap)

    lo, hi = 0.0, 1.0
    while removed(hi).sum() < total and hi < 1e12:
        hi *= 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if removed(mid).sum() < total:
            lo = mid
        else:
            hi = mid
    real = removed(hi)
    counts = torch.floor(real)
    short = int(total - counts.sum().item())
    # largest remainders first, among layers below their cap
    frac = (real - counts).masked_fill(counts >= cap, -1.0)
    for i in torch.argsort(frac, descending=True, stable=True).tolist():
        if short <= 0:
            break
        if counts[i] < cap[i]:
            counts[i] += 1
            short -= 1
    return dict(zip(names, [int(c) for c in counts.tolist()]))


def remove_lowest(mask: Mask, scores: Mapping[str, torch.Tensor], counts: Mapping[str, int]) -> Mask:
    """A new mask without the `counts[n]` lowest-scoring surviving weights of each layer n."""
    out = {}
    for n in mask:
        keep = mask[n].flatten()
        s = scores[n].to(keep.device).masked_fill(~keep, INF)
        chosen = torch.argsort(s, stable=True)[: counts.get(n, 0)]
        new = keep.clone()
        new[chosen] = False
        out[n] = new.view_as(mask[n])
    return Mask(out)


def prune_round(weights: Mapping[str, torch.Tensor], mask: Mask, schedule: str, rate: float, *,
                layer_weights: Optional[Mapping[str, float]] = None, max_layer_rate: float = 0.9,
                generator: Optional[torch.Generator] = None) -> Mask:
    """The next, smaller mask: remove `rate` of the surviving prunable weights as `schedule` says."""
    if not 0.0 < rate < 1.0:
        raise ValueError(f"rate must be in (0, 1), got {rate}")
    kept = mask.kept_counts()
    counts = uniform_counts(kept, rate)
    total = sum(counts.values())
    if schedule == "uniform":
        scores = _scores_magnitude(weights, mask)
    elif schedule == "random":
        scores = _scores_random(mask, generator or torch.Generator().manual_seed(0))
    elif schedule == "global":
        scores = _scores_magnitude(weights, mask)
        counts = _global_counts(scores, mask, total)
    elif schedule == "lamp":
        scores = _scores_lamp(weights, mask)
        counts = _global_counts(scores, mask, total)
    elif schedule == "layerwise":
        if layer_weights is None:
            raise ValueError("the layerwise schedule needs per-layer weights (layer_rates stage)")
        scores = _scores_magnitude(weights, mask)
        counts = layerwise_counts(kept, layer_weights, total, max_layer_rate)
    else:
        raise ValueError(f"unknown schedule {schedule!r}")
    return remove_lowest(mask, scores, counts)

