"""FID effects on the log scale: a FID is positive and skewed over seeds, so effects are ratios and
every interval is made on log FID and mapped back with exp (it can never be cut at 0).

- `log_ratio`: FID(a) / FID(b) paired by seed and by shared samples: per-seed d_s = log FID_a − log FID_b,
  the interval of their mean by pipeline.stats.paired (n − 1 df), reported as exp(mean) [exp(low), exp(high)]:
  the geometric-mean ratio.
- `geometric_mean`: one run type's FID over seeds, exp of the mean log FID with its interval.

Replicates move to the log scale with the run's own FID: a split error e_k (FID units, see
pipeline.stats.paired) becomes e_k / FID (the delta method, d log x = dx / x); a bootstrap replicate
x*_r becomes log x*_r (exact).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from .paired import SeedEstimate, _with_rule, one_sample, replicate_differences


@dataclass(frozen=True)
class RatioEstimate:
    """exp of a mean over seeds on the log scale, with its interval; `log` keeps the log-scale estimate
    (tests, p-values, df, the small-n sentence)."""
    ratio: float
    low: float
    high: float
    log: SeedEstimate

    @property
    def ci(self) -> tuple[float, float]:
        return (self.low, self.high)

    @property
    def n(self) -> int:
        return self.log.n

    @property
    def rule(self) -> str:
        return self.log.rule


def _positive(x, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise ValueError(f"{name} must be positive finite numbers for the log scale, got {x!r}")
    return arr


def log_replicates(values, replicates, kind: str) -> np.ndarray:
    """Replicates (n, R) of per-seed `values` moved to the log scale (module docstring)."""
    v = _positive(values, "values")
    r = np.asarray(replicates, dtype=np.float64)
    if r.ndim == 1:
        r = r[None, :]
    if kind == "split":
        return r / v[:, None]
    if kind == "bootstrap":
        return np.log(_positive(r, "bootstrap replicates"))
    raise ValueError(f"kind must be 'split' or 'bootstrap', got {kind!r}")


def _exp(est: SeedEstimate, rule: str) -> RatioEstimate:
    est = _with_rule(est, rule)
    return RatioEstimate(math.exp(est.estimate), math.exp(est.low) if math.isfinite(est.low) else math.nan,
                         math.exp(est.high) if math.isfinite(est.high) else math.nan, est)


def log_ratio(a: Sequence[float], b: Sequence[float], a_replicates=None, b_replicates=None, *,
              kind: str = "split", level: float = 0.95, null_ratio: float = 1.0) -> RatioEstimate:
    """Geometric-mean ratio FID(a) / FID(b) over seeds, paired by seed and shared samples; the tests
    (t and exact sign-flip) are of mean log ratio = log(`null_ratio`)."""
    la, lb = np.log(_positive(a, "a")), np.log(_positive(b, "b"))
    if la.shape != lb.shape or la.ndim != 1:
        raise ValueError("a ratio needs one value per seed on both sides")
    values = {"a_replicates": a, "b_replicates": b}
    reps = replicate_differences(la.size, a_replicates, b_replicates,
                                 lambda r, name: log_replicates(values[name], r, kind))
    est = one_sample(la - lb, reps, kind=kind, level=level, null=math.log(null_ratio))
    return _exp(est, "log FID ratio paired by seed, interval on the mean log ratio mapped back with exp; " + est.rule)


def geometric_mean(values: Sequence[float], replicates=None, *, kind: str = "split",
                   level: float = 0.95) -> RatioEstimate:
    """exp(mean log FID) over seeds with its interval (positive by construction)."""
    lv = np.log(_positive(values, "values"))
    reps = log_replicates(values, replicates, kind) if replicates is not None else None
    est = one_sample(lv, reps, kind=kind, level=level)
    return _exp(est, "geometric mean: interval on the mean log FID mapped back with exp; " + est.rule)


def ratio_text(e: RatioEstimate, spec: str = ".3f") -> str:
    """'1.050× [0.980, 1.120]' (no interval: '1.050×')."""
    if not math.isfinite(e.low):
        return f"{format(e.ratio, spec)}×"
    return f"{format(e.ratio, spec)}× [{format(e.low, spec)}, {format(e.high, spec)}]"


__all__ = ["RatioEstimate", "geometric_mean", "log_ratio", "log_replicates", "ratio_text"]
