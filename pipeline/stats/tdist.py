"""Student-t intervals: the one quantile helper every interval in pipeline/ uses, the plain t-interval
of a mean over seeds, and the one place an interval is cut at a bound (0 for a FID or a cost, [0, 1]
for a sparsity).

Callers keep their own arithmetic for the half-width (q · se); only the quantile comes from here, so
the printed numbers do not move by a rounding step when a caller switches to it.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from scipy import stats


def quantile(level: float, df: float, *, two_sided: bool = True) -> float:
    """The t quantile an interval at `level` needs: t((1 + level)/2, df) two-sided, t(level, df)
    one-sided; the normal quantile when df is infinite (one seed: no between-seed variance)."""
    q = 0.5 + level / 2 if two_sided else level
    return float(stats.norm.ppf(q) if math.isinf(df) else stats.t.ppf(q, df))


def t_interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float, float, int]:
    """(mean, low, high, n): mean ± t((1+level)/2, n−1)·s/√n over the finite `values`; no interval
    (NaN) for n < 2."""
    x = np.asarray([v for v in values if v is not None and math.isfinite(float(v))], dtype=float)
    n = len(x)
    if n == 0:
        return (math.nan, math.nan, math.nan, 0)
    mean = float(x.mean())
    if n < 2:
        return (mean, math.nan, math.nan, n)
    half = float(quantile(level, n - 1) * x.std(ddof=1) / math.sqrt(n))
    return (mean, mean - half, mean + half, n)


def cut(low: float, high: float, floor: float = 0.0, ceiling: float = math.inf) -> tuple[float, float]:
    """An interval of a bounded quantity cut to [floor, ceiling]: a symmetric interval of a mean over
    few seeds is not printed beyond what the quantity can take. No interval (a NaN end) stays as is."""
    if not math.isfinite(low):
        return (low, high)
    return (max(floor, low), high if math.isinf(ceiling) else min(ceiling, high))
