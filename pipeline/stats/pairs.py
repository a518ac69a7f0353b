"""Similarity statistics with the ticket pair as the unit, and the magnitude null.

A similarity claim is about pairs of tickets, so a statistic is computed for every unordered pair of
seeds and averaged: the U-statistic. Its interval comes from deleting one seed at a time (the seed is
what was sampled; pairs sharing a seed are dependent), not from resampling the layers of one pair.

The magnitude null: if each ticket were only the magnitude mask of its starting point plus
independent changes (A ⟂ B given the two magnitude masks M_A, M_B), then for binary masks of equal
density, where Cohen's kappa equals the phi correlation and every regression between 0/1 variables is
linear, the correlations multiply along the chain A — M_A — M_B — B:

    κ(A, B)_pred = κ(A, M_A) · κ(M_A, M_B) · κ(M_B, B)   (per layer).

Agreement beyond the starting magnitudes is observed − predicted > 0, not κ(A, B) > κ(A, M_A).
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Hashable, Mapping, Optional, Sequence

import numpy as np

from pipeline.stats.tdist import quantile

Pair = tuple


@dataclass(frozen=True)
class PairEstimate:
    """Mean of a statistic over all pairs of seeds, with its seed-level jackknife interval."""
    estimate: float
    se: float
    low: float
    high: float
    level: float
    seeds: tuple
    pairs: dict            # {(s, t): value} for every unordered pair, s before t in `seeds`
    leave_one_out: dict    # {s: mean over the pairs without seed s}
    rule: str

    @property
    def ci(self) -> tuple[float, float]:
        return (self.low, self.high)


def _lookup(values: Mapping, s, t) -> float:
    if (s, t) in values:
        return float(values[(s, t)])
    if (t, s) in values:
        return float(values[(t, s)])
    raise KeyError(f"no value for the pair of seeds {s} and {t}")


def pair_mean(values: Mapping[Pair, float], seeds: Optional[Sequence[Hashable]] = None,
              level: float = 0.95) -> PairEstimate:
    """U-statistic (mean over all unordered pairs of seeds) of the per-pair `values` {(s, t): value},
    with a delete-one-seed jackknife interval: θ_(k) the mean over pairs without seed k,
    SE² = (n − 1)/n · Σ_k (θ_(k) − θ̄_(·))², Student-t with n − 1 df. Needs n >= 3 seeds."""
    if seeds is None:
        seeds = sorted({s for pair in values for s in pair})
    seeds = tuple(seeds)
    n = len(seeds)
    if len(set(seeds)) != n:
        raise ValueError(f"seeds must be distinct, got {seeds}")
    if n < 3:
        raise ValueError(f"a seed-level interval over ticket pairs needs at least 3 seeds (delete-one-seed "
                         f"must leave a pair), got {n}: {list(seeds)}")
    pairs = {(s, t): _lookup(values, s, t) for s, t in itertools.combinations(seeds, 2)}
    if not all(math.isfinite(v) for v in pairs.values()):
        raise ValueError(f"non-finite pair values: {pairs}")
    est = float(np.mean(list(pairs.values())))
    loo = {k: float(np.mean([v for (s, t), v in pairs.items() if k not in (s, t)])) for k in seeds}
    theta = np.array(list(loo.values()))
    se = float(math.sqrt((n - 1) / n * np.sum((theta - theta.mean()) ** 2)))
    half = quantile(level, n - 1) * se
    rule = (f"mean over all {len(pairs)} pairs of {n} seeds (U-statistic); interval: delete-one-seed jackknife, "
            f"Student-t, {n - 1} df")
    if n == 3:
        rule += ("; with 3 seeds each jackknife value is a single pair and the interval rests on 2 df: "
                 "very rough")
    elif n < 6:
        rule += f"; with {n} seeds the interval is rough"
    return PairEstimate(est, se, est - half, est + half, level, seeds, pairs, loo, rule)


def kappa(a, b) -> np.ndarray:
    """Cohen's kappa of two binary masks, along the last axis (batched)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    pa, pb = a.mean(-1), b.mean(-1)
    po = (a * b).mean(-1) + ((1 - a) * (1 - b)).mean(-1)
    pe = pa * pb + (1 - pa) * (1 - pb)
    return (po - pe) / (1 - pe)


@dataclass(frozen=True)
class MagnitudeExcess:
    """Per layer: observed κ(A, B), its conditional-independence prediction, and their difference."""
    observed: np.ndarray
    predicted: np.ndarray
    excess: np.ndarray

    @property
    def mean_excess(self) -> float:
        return float(np.mean(self.excess))

    @property
    def layers_above(self) -> int:
        return int(np.count_nonzero(self.excess > 0))


def magnitude_excess(k_ab, k_a_ma, k_ma_mb, k_mb_b) -> MagnitudeExcess:
    """observed − predicted per layer, predicted = κ(A, M_A) · κ(M_A, M_B) · κ(M_B, B) (module
    docstring); arguments are per-layer kappas (arrays of equal length, or scalars)."""
    arrs = [np.atleast_1d(np.asarray(k, dtype=np.float64)) for k in (k_ab, k_a_ma, k_ma_mb, k_mb_b)]
    if len({a.shape for a in arrs}) != 1:
        raise ValueError(f"per-layer kappas must have equal shapes, got {[a.shape for a in arrs]}")
    obs, k1, k2, k3 = arrs
    pred = k1 * k2 * k3
    return MagnitudeExcess(obs, pred, obs - pred)
