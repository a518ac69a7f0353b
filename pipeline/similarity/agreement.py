"""How alike two winning tickets are, layer by layer, in the order the forward pass runs.

The paper's claim (Jiang et al. 2023): two tickets of the same model agree more in upstream blocks
than downstream ones. Here, per prunable layer:

- jaccard:        |A and B| / |A or B| of the kept weights (1 when both keep nothing);
- jaccard_chance: the Jaccard two independent random masks of the same densities p, q would have,
                  pq / (p + q - pq) (the ratio of expectations; exact up to O(1/n));
- kappa:          Cohen's kappa of kept/pruned agreement, (p_o - p_e) / (1 - p_e) with
                  p_e = pq + (1-p)(1-q): 1 identical, ~0 independent, < 0 complementary
                  (1 when both masks are constant and equal, the only case with p_e = 1);
- hamming:        fraction of positions where the masks differ (Early-Bird's mask distance);
- sign_agreement: fraction of the weights kept by both whose trained signs agree
                  (NaN when no weight is kept by both: undefined, and pandas' means skip it);
- cosine:         cosine similarity of the two masked trained weight tensors (0 when either is
                  all zero: no direction to compare).

This module holds the per-layer side (where a layer sits, the metrics, the layerwise schedule's
weights); `claims` turns the per-layer table into claims with intervals and `plots` draws them.
"""
from __future__ import annotations

import itertools
import re
from typing import Mapping, Optional, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from pipeline.core.config import ConfigError, Params
from pipeline.similarity.naming import block_of, block_order, block_rank, pair_label, parse_pair  # noqa: F401
from pipeline.sparsity.masks import PRUNABLE_MODULES, Mask

METRICS = ("jaccard", "jaccard_chance", "kappa", "hamming", "sign_agreement", "cosine")
COLUMNS = ("layer", "block", "depth", "metric", "value")


# -- where a layer sits -------------------------------------------------------------------------
def forward_layer_order(model: nn.Module, input_shape: Sequence[int], batch: int = 1) -> list[str]:
    """Conv/linear weight names in the order their modules are first called by one forward pass of
    `model(x, t)` on a dummy input of shape (batch, *input_shape) (t = 0), as forward hooks see it."""
    order: list[str] = []
    seen: set[str] = set()

    def hook_for(name: str):
        def hook(module, args, output):
            if name not in seen:
                seen.add(name)
                order.append(name)
        return hook

    handles = [m.register_forward_hook(hook_for(f"{n}.weight" if n else "weight"))
               for n, m in model.named_modules() if isinstance(m, PRUNABLE_MODULES)]
    param = next(model.parameters())
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            x = torch.randn(batch, *input_shape, device=param.device, dtype=param.dtype)
            t = torch.zeros(batch, dtype=torch.long, device=param.device)
            model(x, t)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return order


def block_resolutions(model: nn.Module, input_shape: Sequence[int]) -> dict[str, int]:
    """Feature-map height at which each block starts working: the input height of the block's first
    conv call in one forward pass (a block without convs, e.g. the time MLP, is left out). Measured,
    not derived from the config, so the encoder/decoder pairing follows the real network."""
    heights: dict[str, int] = {}

    def hook_for(block: str):
        def hook(module, args, output):
            heights.setdefault(block, int(args[0].shape[-2]))
        return hook

    handles = []
    for n, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            try:
                handles.append(m.register_forward_hook(hook_for(block_of(f"{n}.weight"))))
            except ValueError:
                continue  # a conv outside the U-Net's blocks
    param = next(model.parameters())
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.randn(1, *input_shape, device=param.device, dtype=param.dtype),
                  torch.zeros(1, dtype=torch.long, device=param.device))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return heights


PAIRING_RULE = ("encoder block down{i} (all its layers: residual blocks, attention, downsampler) is paired with the "
                "decoder block up{j} whose residual blocks run at the same feature-map size, which is the one that "
                "consumes down{i}'s skip connections (up blocks are numbered deepest first, so j = levels-1-i); "
                "the input conv is paired with the output block (both at full resolution, joined by the first "
                "skip) only when both have prunable layers; mid has no counterpart and is left out")


def resolution_pairs(blocks: Sequence[str], resolutions: Optional[Mapping[str, int]] = None) -> list[dict]:
    """Encoder/decoder block pairs at equal resolution, shallowest first: one dict per level with
    level ("stem" or i), encoder, decoder and resolution (None without `resolutions`). Without
    measured resolutions the U-Net's mirror rule up{levels-1-i} <-> down{i} is used."""
    present = set(blocks)
    downs = sorted((b for b in present if b.startswith("down")), key=block_rank)
    ups = sorted((b for b in present if b.startswith("up")), key=block_rank)
    levels = max([block_rank(b)[1] + 1 for b in downs + ups], default=0)
    pairs = []
    if "input" in present and "output" in present:
        res = None if resolutions is None else resolutions.get("input")
        pairs.append({"level": "stem", "encoder": "input", "decoder": "output", "resolution": res})
    for i in range(levels):
        enc = f"down{i}"
        if enc not in present:
            continue
        if resolutions is None:
            dec = f"up{levels - 1 - i}"
        else:
            same = [u for u in ups if resolutions.get(u) == resolutions.get(enc)]
            if len(same) != 1:
                raise ValueError(f"{enc} runs at {resolutions.get(enc)} px and matches decoder blocks {same}, "
                                 "not exactly one")
            dec = same[0]
        if dec in present:
            pairs.append({"level": i, "encoder": enc, "decoder": dec,
                          "resolution": None if resolutions is None else resolutions[enc]})
    return pairs


def fan_in(shape: Sequence[int]) -> int:
    """Inputs feeding one output unit of a conv/linear weight of this shape: in_channels * kernel area."""
    return int(np.prod(shape[1:])) if len(shape) > 1 else 1


# -- metrics ------------------------------------------------------------------------------------
_STATS = ("n", "n_a", "n_b", "n_ab", "n_sign", "dot", "norm_a", "norm_b")


def _pair_stats(mask_a: torch.Tensor, mask_b: torch.Tensor, weights_a: Optional[torch.Tensor],
                weights_b: Optional[torch.Tensor]) -> torch.Tensor:
    """The sufficient statistics of one layer's comparison, as one float64 tensor (no host sync)."""
    a, b = mask_a.flatten().bool(), mask_b.flatten().to(mask_a.device).bool()
    if a.shape != b.shape:
        raise ValueError(f"masks differ in size: {tuple(mask_a.shape)} vs {tuple(mask_b.shape)}")
    both = a & b
    counts = torch.stack([a.sum(), b.sum(), both.sum()]).double()
    if weights_a is None or weights_b is None:
        extra = torch.full((4,), float("nan"), dtype=torch.float64, device=a.device)
    else:
        wa = weights_a.detach().flatten().to(a.device, torch.float64) * a
        wb = weights_b.detach().flatten().to(a.device, torch.float64) * b
        same_sign = (torch.sign(wa) == torch.sign(wb)) & both
        extra = torch.stack([same_sign.sum().double(), (wa * wb).sum(), wa.norm(), wb.norm()])
    n = torch.tensor([float(a.numel())], dtype=torch.float64, device=a.device)
    return torch.cat([n, counts, extra])  # order: _STATS


def _metrics_from_stats(s: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every metric for a (layers, 8) stack of `_pair_stats`, vectorised over layers."""
    n, n_a, n_b, n_ab, n_sign, dot, norm_a, norm_b = s.unbind(-1)
    union = n_a + n_b - n_ab
    p, q = n_a / n, n_b / n
    jaccard = torch.where(union > 0, n_ab / union.clamp_min(1), torch.ones_like(n))
    chance_union = p + q - p * q
    jaccard_chance = torch.where(chance_union > 0, p * q / chance_union.clamp_min(1e-300), torch.ones_like(n))
    agree = (n - union + n_ab) / n  # kept by both or pruned by both
    expected = p * q + (1 - p) * (1 - q)
    free = 1 - expected
    kappa = torch.where(free > 0, (agree - expected) / free.where(free > 0, torch.ones_like(free)),
                        torch.ones_like(n))
    hamming = (union - n_ab) / n
    sign = n_sign / n_ab.where(n_ab > 0, torch.full_like(n_ab, float("nan")))
    norms = norm_a * norm_b
    cosine = torch.where(norms > 0, dot / norms.where(norms > 0, torch.ones_like(norms)), torch.zeros_like(n))
    cosine = cosine.where(~norms.isnan(), norms)  # no weights given -> NaN
    return {"jaccard": jaccard, "jaccard_chance": jaccard_chance, "kappa": kappa, "hamming": hamming,
            "sign_agreement": sign, "cosine": cosine}


def layer_metrics(mask_a: torch.Tensor, mask_b: torch.Tensor, weights_a: Optional[torch.Tensor] = None,
                  weights_b: Optional[torch.Tensor] = None) -> dict[str, float]:
    """All of METRICS for one layer's two boolean masks (and trained weights, for the sign and
    cosine metrics; without them those two are NaN)."""
    m = _metrics_from_stats(_pair_stats(mask_a, mask_b, weights_a, weights_b)[None])
    return {k: float(v[0]) for k, v in m.items()}


def agreement(mask_a: Mask, mask_b: Mask, metric: str = "kappa") -> dict[str, float]:
    """Per-layer agreement of two masks: Cohen's kappa, or Jaccard minus its chance value (both are
    0 for independent random masks, so layers of different densities compare fairly)."""
    if metric not in ("kappa", "jaccard"):
        raise ValueError(f"agreement metric must be kappa or jaccard, got {metric!r}")
    names = _same_layers(mask_a, mask_b)
    m = _metrics_from_stats(torch.stack([_pair_stats(mask_a[n], mask_b[n], None, None) for n in names]))
    values = m["kappa"] if metric == "kappa" else m["jaccard"] - m["jaccard_chance"]
    return dict(zip(names, values.tolist()))


def magnitude_mask(weights: Mapping[str, torch.Tensor], kept: Mapping[str, int]) -> Mask:
    """Per layer, the `kept[n]` largest-magnitude weights of `weights[n]` (ties by index, as pruning
    breaks them): the mask a one-shot magnitude pruning of these weights would keep at that density."""
    from pipeline.sparsity.pruning import remove_lowest

    full = Mask({n: torch.ones_like(weights[n], dtype=torch.bool) for n in kept})
    scores = {n: weights[n].detach().abs().float().flatten() for n in kept}
    return remove_lowest(full, scores, {n: full[n].numel() - int(kept[n]) for n in kept})


def start_agreement(ticket: Mask, start: Mapping[str, torch.Tensor], metric: str = "kappa") -> dict[str, float]:
    """Per-layer agreement of a ticket with the magnitude mask of the weights it restarted from, at
    exactly the ticket's per-layer kept counts: what magnitude alone would have chosen."""
    return agreement(ticket, magnitude_mask(start, ticket.kept_counts()), metric)


def _same_layers(mask_a: Mask, mask_b: Mask) -> list[str]:
    if set(mask_a.names()) != set(mask_b.names()):
        only = sorted(set(mask_a.names()) ^ set(mask_b.names()))
        raise ValueError(f"the two tickets prune different layers: {only[:3]}")
    return mask_a.names()


def compare_tickets(mask_a: Mask, mask_b: Mask, weights_a: Mapping[str, torch.Tensor],
                    weights_b: Mapping[str, torch.Tensor], order: Sequence[str]) -> pd.DataFrame:
    """Tidy rows (layer, block, depth, metric, value) for every layer both masks cover, with
    depth = index in `order` (the forward order, e.g. from `forward_layer_order`) among those layers."""
    _same_layers(mask_a, mask_b)
    missing = [n for n in mask_a.names() if n not in set(order)]
    if missing:
        raise ValueError(f"layers missing from the forward order: {missing[:3]}")
    names = [n for n in order if n in mask_a.tensors]
    stats = torch.stack([_pair_stats(mask_a[n], mask_b[n], weights_a[n], weights_b[n]) for n in names])
    metrics = _metrics_from_stats(stats)
    values = torch.stack([metrics[m] for m in METRICS], dim=1).cpu().numpy()  # one host copy
    L, M = values.shape
    return pd.DataFrame({
        "layer": np.repeat(names, M),
        "block": np.repeat([block_of(n) for n in names], M),
        "depth": np.repeat(np.arange(L), M),
        "metric": np.tile(METRICS, L),
        "value": values.reshape(-1),
    })


# -- the layerwise schedule's per-layer weights --------------------------------------------------
EPS = 1e-3  # floor of the redundancy 1 - agreement: a layer whose tickets agree fully is nearly spared


def layer_weights_from_agreement(agreement: Mapping[str, float], strength: float,
                                 eps: float = EPS) -> dict[str, float]:
    """weight_l = (r_l / mean_l r_l) ** strength with r_l = max(1 - agreement_l, eps): layers where
    the tickets disagree carry more redundancy and are pruned harder; strength 0 gives all ones
    (the uniform schedule)."""
    if strength < 0:
        raise ValueError(f"strength must be >= 0, got {strength}")
    names = list(agreement)
    r = (1.0 - torch.tensor([agreement[n] for n in names], dtype=torch.float64)).clamp_min(eps)
    w = (r / r.mean()).pow(strength)
    return dict(zip(names, w.tolist()))


def round_fractions(kept: Mapping[str, int], rate: float, layer_weights: Optional[Mapping[str, float]] = None,
                    max_layer_rate: float = 0.9) -> dict[str, float]:
    """Fraction of its survivors each layer loses in one round removing uniform's total,
    round(rate * sum_l kept_l): the uniform split, or the layerwise one given `layer_weights`."""
    from pipeline.sparsity.pruning import layerwise_counts, uniform_counts

    counts = uniform_counts(kept, rate)
    if layer_weights is not None:
        counts = layerwise_counts(kept, layer_weights, sum(counts.values()), max_layer_rate)
    return {n: counts[n] / kept[n] for n in kept}


# -- the tickets compared ---------------------------------------------------------------------
def seed_pair(params: Params) -> tuple[int, int]:
    seeds = params.imp.seeds
    if len(seeds) < 2:
        raise ConfigError(f"params.yaml: imp.seeds = {list(seeds)} is invalid: comparing tickets needs two seeds")
    return seeds[0], seeds[1]


def all_seed_pairs(params: Params) -> list[tuple[int, int]]:
    """Every unordered pair of IMP seeds, in the order of `imp.seeds` (3 seeds: 3 pairs): the
    similarity claims are about pairs of tickets, so each is computed for every pair."""
    seeds = params.imp.seeds
    if len(seeds) < 2:
        raise ConfigError(f"params.yaml: imp.seeds = {list(seeds)} is invalid: comparing tickets needs two seeds")
    return list(itertools.combinations(seeds, 2))


# -- layer types: the strata of every permutation test ----------------------------------------
LAYER_TYPE_RULE = ("layer type from the weight's name and shape: 'skip1x1' = the 1x1 conv on a residual block's "
                   "skip path (*.skip.weight), 'attention' = the qkv and output projections of a self-attention "
                   "block (*attn.*), 'conv3x3' = any other 3x3 conv (block convs, resamplers), 'linear' = 2-D "
                   "weights (time MLP, per-block time projections), 'conv1x1' = any other 1x1 conv")


def layer_type(name: str, shape: Optional[Sequence[int]] = None) -> str:
    """Stratum of a conv/linear weight (LAYER_TYPE_RULE); without `shape`, from the name alone
    ('other' where the name does not tell)."""
    if re.search(r"(^|\.)skip\.weight$", name):
        return "skip1x1"
    if re.search(r"(^|\.)(mid_)?attn\.", name):
        return "attention"
    if shape is not None:
        shape = tuple(int(d) for d in shape)
        if len(shape) == 2:
            return "linear"
        if len(shape) == 4:
            return f"conv{shape[2]}x{shape[3]}"
        return "other"
    if re.search(r"(^|\.)(time_embed|time_proj)(\.|$)", name):
        return "linear"
    return "other"


def raw_weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach() for n, p in model.named_parameters()}
