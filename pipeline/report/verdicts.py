"""Verdicts on the study's claims, computed from an effect and its interval (pure functions).

Every verdict is one of SUPPORTED / CONTRADICTED / INCONCLUSIVE ("at this scale": a verdict says what
these runs can resolve, not what is true). Intervals are 95 % two-sided unless a caller asks otherwise.

Superseded: `seed_mean_ci`, `paired_difference_ci` and `unpaired_difference_ci` below assume that each
run's samples are drawn independently. They are not: every run samples from the same starting noise
x_T and scores the same held-out items, so the sampling errors of two runs of one seed largely cancel in
their difference, and the errors of different seeds are correlated. Adding sqrt(b_a² + b_b²) per seed
double-counts the noise a pair shares (too wide: 100 % coverage, 2x the width, on the calibration
problem of tests/stats/test_calibration.py with 3 seeds), and the between-seed variance alone misses
the cross-seed covariance (a plain t covered 63 %; the old formula 82 % with 8 seeds). The held-out
loss difference, unpaired over its shared items, covered 100 % where 95 % was asked (over 2x too wide).

What replaces them (pipeline.stats.paired): SE² = s²/n + ĉ, s² the between-seed variance of the
per-seed values (differences d_s for a comparison) and ĉ the mean cross-seed covariance of their
sampling errors, estimated from joint replicates computed on the same resampled sample indices in every
run and seed (`paired`, `one_sample`; FID: the split errors of pipeline.evaluate.intervals), or from the per-item
differences (`paired_items`, `paired_items_over_seeds`); Student-t with Satterthwaite's df, the exact
sign-flip p beside the t p, and the smallest p n seeds can reach. The old functions keep working until
their callers switch; their formula, for the record:

    mean = x̄,   SE² = s²/n + Σ b_s² / n²   (b_s a run's bootstrap std; sqrt(b_a² + b_b²) for a difference),

t(0.975, n − 1) · SE for n >= 2, z(0.975) · SE for n = 1; no bootstrap std and n = 1: no interval.

The verdict rules below take any interval (an `Estimate`'s or a `SeedEstimate`'s `ci`). An interval
that contains the margin or 0 is inconclusive: it is never read as "no more than" or "no difference".
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

SUPPORTED, CONTRADICTED, INCONCLUSIVE = "supported", "contradicted", "inconclusive at this scale"
VERDICTS = (SUPPORTED, CONTRADICTED, INCONCLUSIVE)

NONINFERIORITY_RULE = ("non-inferiority, margin {margin:g}: supported if the interval's upper end <= margin, "
                       "contradicted if its lower end > margin")
SUPERIORITY_RULE = "supported if the interval lies above 0, contradicted if below 0"


@dataclass(frozen=True)
class Estimate:
    """A mean over seeds with its interval and the rule that produced it (for the 'test' column)."""
    mean: float
    low: float
    high: float
    n: int
    rule: str

    @property
    def ci(self) -> tuple[float, float]:
        return (self.low, self.high)


def _finite(x: Optional[float]) -> bool:
    return x is not None and isinstance(x, (int, float)) and math.isfinite(x)


def _quantile(n: int, level: float) -> tuple[float, str]:
    from scipy import stats

    q = 0.5 + level / 2
    if n >= 2:
        return float(stats.t.ppf(q, n - 1)), f"Student-t, {n - 1} df"
    return float(stats.norm.ppf(q)), "normal"


def seed_mean_ci(values: Sequence[float], boot_stds: Sequence[Optional[float]], level: float = 0.95) -> Estimate:
    """Mean of per-seed `values` with the superseded interval of the module docstring (use
    pipeline.stats.paired.one_sample)."""
    vals = [float(v) for v in values if _finite(v)]
    n = len(vals)
    if n == 0:
        return Estimate(math.nan, math.nan, math.nan, 0, "no values")
    mean = sum(vals) / n
    stds = [float(b) for b in boot_stds if _finite(b)]
    have_boot = len(stds) == len(list(values)) and len(stds) > 0
    between = sum((v - mean) ** 2 for v in vals) / (n - 1) if n >= 2 else 0.0
    boot = sum(b * b for b in stds) / n ** 2 if have_boot else 0.0
    if n == 1 and not have_boot:
        return Estimate(mean, math.nan, math.nan, 1, "one seed and no bootstrap std: no interval")
    q, dist = _quantile(n, level)
    half = q * math.sqrt(between / n + boot)
    if n >= 2:
        parts = "between-seed variance / n" + (" + bootstrap variances / n²" if have_boot else
                                              " (no bootstrap std in the metrics)")
        rule = f"{dist} over {n} seeds, SE² = {parts}"
    else:
        rule = "1 seed: bootstrap over samples only (normal); seed variation not measured"
    return Estimate(mean, mean - half, mean + half, n, rule)


def paired_difference_ci(a: Sequence[float], a_std: Sequence[Optional[float]], b: Sequence[float],
                         b_std: Sequence[Optional[float]], level: float = 0.95) -> Estimate:
    """Mean over seeds of a_s − b_s (same seed on both sides), with `seed_mean_ci`'s superseded interval
    (use pipeline.stats.paired.paired, or paired_items_over_seeds for per-item losses)."""
    if len(a) != len(b):
        raise ValueError("paired difference needs one value per seed on both sides")
    diffs = [float(x) - float(y) for x, y in zip(a, b)]
    stds = [math.sqrt(float(sa) ** 2 + float(sb) ** 2) if _finite(sa) and _finite(sb) else None
            for sa, sb in zip(a_std, b_std)]
    est = seed_mean_ci(diffs, stds, level)
    return Estimate(est.mean, est.low, est.high, est.n, "paired by seed; " + est.rule)


def noninferiority(ci: Sequence[float], margin: float) -> str:
    """For an effect where lower is better (ΔFID = candidate − reference): is the candidate within
    `margin` of the reference? Supported if ci_high <= margin, contradicted if ci_low > margin."""
    lo, hi = ci
    if not (_finite(lo) and _finite(hi)):
        return INCONCLUSIVE
    if hi <= margin:
        return SUPPORTED
    if lo > margin:
        return CONTRADICTED
    return INCONCLUSIVE


def superiority(ci: Sequence[float], direction: str = "positive") -> str:
    """The claim predicts effect > 0 ('positive') or < 0 ('negative'): supported when the interval
    excludes 0 on the predicted side, contradicted when it excludes 0 on the other side."""
    lo, hi = ci
    if not (_finite(lo) and _finite(hi)):
        return INCONCLUSIVE
    if direction not in ("positive", "negative"):
        raise ValueError(f"direction must be 'positive' or 'negative', got {direction!r}")
    if direction == "negative":
        lo, hi = -hi, -lo
    if lo > 0:
        return SUPPORTED
    if hi < 0:
        return CONTRADICTED
    return INCONCLUSIVE
