"""Multiplicity: one primary claim is tested at the level alone; every other claim belongs to the family
of secondary claims, whose p-values are Holm-adjusted (step-down Bonferroni: strong family-wise error
control under any dependence, which matters here: the rows share seeds, samples and runs)."""
from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np


def holm(pvalues: Sequence[Optional[float]]) -> list[float]:
    """Holm-adjusted p-values, in the input order; a missing or non-finite p stays NaN and is not counted
    in the family. Sorted ascending p_(1) <= ... <= p_(m): adj_(i) = max_{j <= i} min(1, (m − j + 1) p_(j))."""
    p = np.array([math.nan if v is None else float(v) for v in pvalues], dtype=np.float64)
    out = np.full(p.shape, math.nan)
    have = np.flatnonzero(np.isfinite(p))
    if have.size == 0:
        return out.tolist()
    if np.any((p[have] < 0) | (p[have] > 1)):
        raise ValueError(f"p-values must lie in [0, 1], got {list(p[have])}")
    m = have.size
    order = have[np.argsort(p[have], kind="stable")]
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    out[order] = np.maximum.accumulate(scaled)
    return out.tolist()


__all__ = ["holm"]
