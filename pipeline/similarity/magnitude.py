"""What the starting magnitudes alone predict for the agreement of two tickets, conditioning on the
continuous magnitude rank rather than on a binary top-k mask.

Null: within a layer, whether ticket A keeps a weight depends on the weight only through the rank bin
of |theta_A| (its own start's magnitude, in `bins` equal-count quantile bins), likewise for B, and A and B
are independent given those bins. Then P(A keeps w) = pi_A(bin_A(w)), estimated by the fraction of A's
kept weights in that bin, and

    E[both keep] = sum_w pi_A(bin_A(w)) pi_B(bin_B(w)) = sum_ij N_ij pi_A(i) pi_B(j)

(N_ij: weights in A's bin i and B's bin j; with one shared start only the diagonal). Each bin is also split
at the ticket's own top-k boundary (k its kept count), so the conditioning refines the binary magnitude
mask: a ticket that is exactly its start's magnitude mask is predicted exactly. The expected
agreement gives the expected Cohen's kappa at the tickets' own densities (the bin fractions average
back to them). Conditioning on the binary magnitude mask (top-k at the ticket's density) throws away
how strongly keep probability varies with magnitude inside the kept and the pruned set, and predicts
too little agreement, so the excess over it is biased upward; with rank bins, conditionally
independent tickets whose keep probability varies smoothly with magnitude give excess ~ 0
(tests/similarity/test_magnitude_bins.py).
"""
from __future__ import annotations

from typing import Mapping, Optional

import numpy as np
import pandas as pd
import torch

from pipeline.similarity.claims import _stream, over_pairs, with_layers
from pipeline.similarity.naming import parse_pair
from pipeline.stats.exact import sign_flip_test
from pipeline.stats.pairs import magnitude_excess

BINS_RULE = ("per layer, |theta| of each ticket's own start ranked (ties by index) and cut into "
             "similarity.magnitude_bins equal-count bins, each split at the ticket's own top-k boundary (so the bins "
             "refine its binary magnitude mask); P(kept | bin) per ticket from its own mask; A and B independent "
             "given their bins -> expected kappa at the tickets' densities")


def rank_bins(weights, bins: int, kept: int | None = None) -> np.ndarray:
    """Equal-count bin of each entry's |weight| rank, smallest first, ties by index; with `kept`, each bin
    is further split at the top-`kept` boundary (index 2 * bin + in_top), so the bins refine the binary
    magnitude mask at that count: a ticket that is exactly its start's magnitude mask is then predicted
    exactly. Indices lie in 0 .. 2 * bins - 1."""
    w = weights.detach().abs().flatten().double().cpu().numpy() if isinstance(weights, torch.Tensor) \
        else np.abs(np.asarray(weights, float)).ravel()
    n = w.size
    order = np.argsort(w, kind="stable")
    rank = np.empty(n, np.int64)
    rank[order] = np.arange(n)
    out = (rank * int(bins)) // max(n, 1)
    top = rank >= n - int(kept) if kept is not None else np.zeros(n, bool)
    return 2 * out + top


def _flat(mask) -> np.ndarray:
    if isinstance(mask, torch.Tensor):
        return mask.detach().flatten().bool().cpu().numpy()
    return np.asarray(mask, bool).ravel()


def predicted_kappa(mask_a, bins_a: np.ndarray, mask_b, bins_b: np.ndarray, bins: int) -> float:
    """Expected Cohen's kappa of two masks under independence given each one's magnitude-rank bin
    (`rank_bins` indices, `bins` as passed to it)."""
    bins = 2 * int(bins)
    a, b = _flat(mask_a), _flat(mask_b)
    if a.shape != b.shape or a.shape != bins_a.shape or a.shape != bins_b.shape:
        raise ValueError("masks and bin indices must have one size")
    n = a.size
    count = np.bincount(bins_a, minlength=bins).astype(float), np.bincount(bins_b, minlength=bins).astype(float)
    pi_a = np.bincount(bins_a, weights=a, minlength=bins) / np.maximum(count[0], 1)
    pi_b = np.bincount(bins_b, weights=b, minlength=bins) / np.maximum(count[1], 1)
    joint = np.bincount(bins_a * bins + bins_b, minlength=bins * bins).reshape(bins, bins)
    both = float(pi_a @ joint @ pi_b)
    p, q = a.mean(), b.mean()
    agree = (n - a.sum() - b.sum() + 2 * both) / n
    expected = p * q + (1 - p) * (1 - q)
    if expected >= 1:
        return 1.0  # both masks constant and equal (kappa's own convention)
    return float((agree - expected) / (1 - expected))


def predicted_agreement(mask_a, start_a, mask_b, start_b, bins: int, names=None) -> dict[str, float]:
    """Per layer (Mask-like mappings of masks and of start weights): `predicted_kappa` with each ticket's
    bins from its own start."""
    names = list(names) if names is not None else list(getattr(mask_a, "tensors", mask_a))
    out = {}
    for name in names:
        ka, kb = int(_flat(mask_a[name]).sum()), int(_flat(mask_b[name]).sum())
        ba = rank_bins(start_a[name], bins, ka)
        bb = ba if start_b[name] is start_a[name] and ka == kb else rank_bins(start_b[name], bins, kb)
        out[name] = predicted_kappa(mask_a[name], ba, mask_b[name], bb, bins)
    return out


# -- the claim (observed minus predicted), for one round ------------------------------------------
def magnitude_chain(kappa_ab: pd.DataFrame, own: pd.DataFrame, start_pair: Optional[pd.DataFrame],
                    predicted: pd.DataFrame) -> pd.DataFrame:
    """Per pair and layer: observed kappa(A,B), the prediction under independence given each ticket's
    start's magnitude-rank bins (`predicted`, pipeline.similarity.magnitude) and the excess observed −
    predicted; beside them, for comparison only, the binary-mask chain kappa(A,M_A) kappa(M_A,M_B)
    kappa(M_B,B) (`predicted_binary`, biased low: it conditions on top-k masks, not on the magnitudes).
    `kappa_ab`, `start_pair`, `predicted`: layer x pair; `own`: layer x seed (each ticket against its own
    start's magnitude mask)."""
    frames = []
    for p in kappa_ab.columns:
        a, b = parse_pair(p)
        starts = start_pair[p] if start_pair is not None else pd.Series(np.nan, index=kappa_ab.index)
        ex = magnitude_excess(kappa_ab[p], own[a], starts, own[b])
        pred = predicted[p].to_numpy(float)
        frames.append(pd.DataFrame({"pair": p, "layer": kappa_ab.index, "observed": ex.observed,
                                    "kappa_a_start": own[a].to_numpy(float), "kappa_starts": starts.to_numpy(float),
                                    "kappa_b_start": own[b].to_numpy(float), "predicted": pred,
                                    "excess": ex.observed - pred, "predicted_binary": ex.predicted,
                                    "excess_binary": ex.excess}))
    return pd.concat(frames, ignore_index=True)


def claim_beyond_magnitude(kappa_ab: pd.DataFrame, own: pd.DataFrame, start_pair: Optional[pd.DataFrame],
                           predicted: pd.DataFrame, types: Mapping[str, str], strata: Mapping[str, str],
                           k: int, n: int) -> dict:
    """Observed minus predicted kappa (`magnitude_chain`), mean over layers per pair, then over pairs,
    with the two-way interval over pairs and layers (`strata`: layer -> its sampling stratum)."""
    chain = magnitude_chain(kappa_ab, own, start_pair, predicted)
    by_pair = chain.groupby("pair", sort=False)
    per_layer = chain.groupby("layer", sort=False)["excess"].mean().reindex(kappa_ab.index)
    test = sign_flip_test(per_layer.to_numpy(float), n_resamples=n, seed=_stream("beyond_magnitude", k))
    L = len(per_layer)
    est = with_layers(over_pairs(by_pair["excess"].mean().to_dict()), per_layer.to_numpy(float), np.full(L, 1.0 / L),
                      [strata[x] for x in per_layer.index], test.p)
    by_type = {}
    for t in sorted({types[x] for x in per_layer.index}):
        sel = per_layer[[types[x] == t for x in per_layer.index]]
        by_type[t] = {"layers": len(sel), "mean_excess": float(sel.mean()), "layers_above": int((sel > 0).sum())}
    seeds = list(dict.fromkeys(s for p in kappa_ab.columns for s in parse_pair(p)))
    rule = test.rule.replace("per-seed differences", "per-layer excesses (averaged over the pairs)")
    binary = chain["predicted_binary"]
    return {**est, "p_value": test.p, "p_value_rule": rule, "metric": "kappa",
            "observed_agreement": float(chain["observed"].mean()),
            "predicted_agreement": float(chain["predicted"].mean()),
            "predicted_agreement_binary": float(binary.mean()) if binary.notna().all() else None,
            "excess_binary": float(chain["excess_binary"].mean()) if binary.notna().all() else None,
            "own_start_agreement": float(own[seeds].to_numpy().mean()),
            "own_start_agreement_by_seed": {str(s): float(own[s].mean()) for s in seeds},
            "start_pair_agreement": float(chain["kappa_starts"].mean()) if binary.notna().all() else None,
            "layers": L, "layers_above": int((per_layer > 0).sum()),
            "layers_above_by_pair": {p: int((g["excess"] > 0).sum()) for p, g in by_pair},
            "by_type": by_type}
