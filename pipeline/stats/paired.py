"""One standard-error model for quantities measured over seeds with common random numbers.

Every run of the study samples from the same starting noise x_T (sample i is sample i in every run)
and scores the same held-out items. For seeds s = 1..n a quantity x_s (a FID, or the paired
difference d_s = a_s − b_s of two runs of seed s) is

    x_s = μ + u_s + e_s,   Var(u_s) = σ² (seed effect),   Var(e_s) = v,   Cov(e_s, e_t) = c (s ≠ t),

the sampling error e_s being correlated across seeds because the samples/items are shared. Then
E[s²] = σ² + v − c for the between-seed variance s² (ddof 1), and

    Var(x̄) = (σ² + v − c) / n + c   ⇒   SE² = s² / n + ĉ,

ĉ the mean off-diagonal entry of the seeds' sampling covariance matrix, estimated from replicates
computed on the SAME resampled index sets in every run and every seed (a joint resampling). With one
seed SE² = v̂, its within-seed sampling variance, and seed variation is not measured.

Replicates come in two kinds (`sampling_cov`):
- 'bootstrap': replicate r of every run is the statistic on bootstrap draw r of the shared indices;
  the covariance is the usual one over r. Right for means (held-out loss); for FID it overstates the
  variance (duplicates; see pipeline.evaluate.intervals), so it errs wide.
- 'split': replicate k is e_k = (x(A_k) − x(B_k)) / 2 for a split k of the shared indices into two
  disjoint halves, the same split in every run; E[e_k e'_k] is the covariance at N/2 halved, i.e. the
  covariance at N when it falls as 1/N (the FID split errors of pipeline.evaluate.intervals).

The interval is Student-t with n − 1 df, normal for one seed. Satterthwaite's df with ĉ counted as
known, (n − 1) SE⁴ / (s²/n)², is larger and under-covers at 3 seeds (92–93.5 % for a 95 % interval,
tests/stats/test_df_calibration.py): ĉ is itself estimated and s² over 3 seeds is very noisy, so the
conservative n − 1 is used. Beside the t-test stands the exact sign-flip test, which
needs no normality but conditions on the shared samples (their sampling error is not in it) and can
never go below p = 2 / 2ⁿ.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
from scipy import stats

from .exact import min_p, sign_flip_test
from .tdist import quantile

KINDS = ("bootstrap", "split")
_KIND_TEXT = {"bootstrap": "joint bootstrap of the shared sample indices",
              "split": "joint half-splits of the shared sample indices",
              "items": "per-item differences on the shared items"}


@dataclass(frozen=True)
class SeedEstimate:
    """A mean over seeds with its interval, tests and the rule behind them (the report's 'test')."""
    estimate: float
    se: float
    low: float
    high: float
    level: float
    n: int
    df: float                       # inf for the normal interval of one seed
    values: tuple                   # per-seed values (differences for a paired comparison)
    sampling_sd: Optional[tuple]    # within-seed sampling SD of each value (None: no replicates)
    shared_cov: Optional[float]     # ĉ, as estimated (None: no replicates or one seed)
    t_p: float                      # two-sided p of (estimate − null) / SE on df (nan: no null)
    exact_p: float                  # two-sided exact sign-flip p of the values against null
    min_p: float                    # smallest p the exact test can reach over n seeds, 2 / 2ⁿ
    exact_can_reach: bool           # min_p <= 1 − level
    small_n: str                    # '' or the sentence saying the exact test can never reach the level
    rule: str

    @property
    def ci(self) -> tuple[float, float]:
        return (self.low, self.high)


def _as_matrix(x, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] < 2:
        raise ValueError(f"{name} must be (seeds, replicates) with at least 2 replicates, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} holds non-finite values")
    return arr


def sampling_cov(replicates, kind: str = "bootstrap") -> np.ndarray:
    """The seeds' sampling covariance matrix (n, n) from joint replicates (n, R); see the module
    docstring for the two kinds."""
    r = _as_matrix(replicates, "replicates")
    if kind == "bootstrap":
        centred = r - r.mean(1, keepdims=True)
        return centred @ centred.T / (r.shape[1] - 1)
    if kind == "split":
        return r @ r.T / r.shape[1]
    raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")


def item_mean_cov(per_item) -> np.ndarray:
    """Sampling covariance matrix (n, n) of the item means of n seeds' per-item values (n, m) on the
    same m items: the covariance over items of rows s and t, divided by m."""
    x = _as_matrix(per_item, "per-item values")
    centred = x - x.mean(1, keepdims=True)
    return centred @ centred.T / (x.shape[1] - 1) / x.shape[1]


def _small_n(n: int, level: float) -> tuple[float, bool, str]:
    alpha = 1 - level
    mp = min_p(n)
    if mp <= alpha + 1e-12:
        return mp, True, ""
    need = math.ceil(math.log2(2 / alpha) - 1e-12)
    return mp, False, (f"with {n} seed{'s' if n != 1 else ''} an exact test cannot go below p = {mp:.3g}; "
                       f"it takes {need} seeds to reach p <= {alpha:.3g}")


def seed_mean(values: Sequence[float], cov=None, *, level: float = 0.95, null: Optional[float] = None,
              source: str = "replicates") -> SeedEstimate:
    """Mean of per-seed `values` with SE² = s²/n + ĉ (n >= 2) or the sampling variance (n = 1), from
    the seeds' sampling covariance matrix `cov` (n, n) (None: not measured). Tests against `null`
    (None: no tests). `source` names where `cov` came from, for the rule text."""
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1 or x.size == 0 or not np.all(np.isfinite(x)):
        raise ValueError(f"values must be a non-empty 1-D array of finite numbers, got {values!r}")
    n = x.size
    if cov is not None:
        cov = np.asarray(cov, dtype=np.float64)
        if cov.shape != (n, n):
            raise ValueError(f"sampling covariance must be ({n}, {n}) for {n} seeds, got {cov.shape}")
    mean = float(x.mean())
    sd = tuple(float(math.sqrt(max(v, 0.0))) for v in np.diag(cov)) if cov is not None else None
    mp, reach, small = _small_n(n, level)
    c_hat, note = None, ""
    if n == 1:
        if cov is None:
            return SeedEstimate(mean, math.nan, math.nan, math.nan, level, 1, math.nan, tuple(x), None, None,
                                math.nan, math.nan, mp, reach, small,
                                "1 seed and no replicates: no interval")
        se2, df = float(cov[0, 0]), math.inf
        rule = (f"1 seed: SE = its sampling SD ({_KIND_TEXT.get(source, source)}), normal; "
                f"seed variation not measured")
    else:
        between = float(x.var(ddof=1))
        if cov is not None:
            c_hat = float((cov.sum() - np.trace(cov)) / (n * (n - 1)))
            c_used = max(c_hat, 0.0)
            if c_hat < 0:
                note = f"; ĉ = {c_hat:.3g} < 0 set to 0"
            se2, df = between / n + c_used, float(n - 1)
            rule = (f"{n} seeds: SE² = between-seed variance / n + mean cross-seed sampling covariance ĉ "
                    f"({_KIND_TEXT.get(source, source)}){note}; Student-t, {n - 1} df")
        else:
            se2, df = between / n, float(n - 1)
            rule = (f"{n} seeds: SE² = between-seed variance / n (no replicates: the shared-noise term is "
                    f"not measured); Student-t, {n - 1} df")
    se = math.sqrt(max(se2, 0.0))
    quant = quantile(level, df)
    low, high = mean - quant * se, mean + quant * se
    t_p = exact_p = math.nan
    if null is not None:
        if se > 0:
            z = abs(mean - null) / se
            t_p = float(2 * (stats.norm.sf(z) if math.isinf(df) else stats.t.sf(z, df)))
        exact_p = sign_flip_test(x, null=null).p
        rule += (f"; exact sign-flip p over the {n} seeds beside the t p (it conditions on the shared "
                 f"samples; smallest attainable {mp:.3g})")
    if small:
        rule += f"; {small}"
    return SeedEstimate(mean, se, low, high, level, n, df, tuple(float(v) for v in x), sd, c_hat,
                        t_p, exact_p, mp, reach, small, rule)


def one_sample(values: Sequence[float], replicates=None, *, kind: str = "bootstrap", level: float = 0.95,
               null: Optional[float] = None) -> SeedEstimate:
    """Mean over seeds of one run type's quantity (e.g. mean FID), SE² = s²/n + ĉ with ĉ the
    cross-seed covariance of its joint `replicates` (n, R) of `kind`."""
    cov = sampling_cov(replicates, kind) if replicates is not None else None
    return seed_mean(values, cov, level=level, null=null, source=kind)


def paired(a: Sequence[float], b: Sequence[float], a_replicates=None, b_replicates=None, *,
           kind: str = "bootstrap", level: float = 0.95, null: float = 0.0) -> SeedEstimate:
    """Mean over seeds of d_s = a_s − b_s (same seed, same shared samples on both sides), SE² =
    s²_d/n + ĉ with ĉ from the replicate differences D_s[r] = A_s[r] − B_s[r] (replicates (n, R) on
    the same index draws in every run and seed); tests of mean d = `null`."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError("a paired difference needs one value per seed on both sides")
    reps = replicate_differences(a.size, a_replicates, b_replicates, _as_matrix)
    est = one_sample(a - b, reps, kind=kind, level=level, null=null)
    return _with_rule(est, "paired by seed; " + est.rule)


def replicate_differences(n: int, a_replicates, b_replicates, as_matrix) -> Optional[np.ndarray]:
    """D_s[r] = A_s[r] − B_s[r] of two runs' replicates drawn on the same indices (None without
    replicates); `as_matrix(replicates, name)` checks each side and brings it to (n, R)."""
    if (a_replicates is None) != (b_replicates is None):
        raise ValueError("give replicates for both runs or for neither")
    if a_replicates is None:
        return None
    ra, rb = as_matrix(a_replicates, "a_replicates"), as_matrix(b_replicates, "b_replicates")
    if ra.shape != rb.shape or ra.shape[0] != n:
        raise ValueError(f"replicates must be ({n}, R) on both sides, got {ra.shape} and {rb.shape}")
    return ra - rb


def _with_rule(est: SeedEstimate, rule: str) -> SeedEstimate:
    from dataclasses import replace

    return replace(est, rule=rule)


def paired_items_over_seeds(losses_a, losses_b, *, level: float = 0.95, null: float = 0.0) -> SeedEstimate:
    """Mean over seeds of the per-seed mean item difference, losses (n, m) on the same m items in every
    run and seed: SE² = s²/n of the per-seed means + the mean cross-seed covariance of the item-mean
    differences, cov over items of D_s[i], D_t[i] divided by m (n = 1: the per-item SE)."""
    a, b = _as_matrix(losses_a, "losses_a"), _as_matrix(losses_b, "losses_b")
    if a.shape != b.shape:
        raise ValueError(f"per-item losses must have equal shapes, got {a.shape} and {b.shape}")
    d = a - b
    est = seed_mean(d.mean(1), item_mean_cov(d), level=level, null=null, source="items")
    return _with_rule(est, "paired by seed and item; " + est.rule)
