"""Where a FID interval is computed, for everything the report prints over seeds: the mean FID and
FID∞ of a run type, and the difference FID(a) − FID(b) of two run types paired by seed and by shared
samples. Each comes from one eval's own numbers: its FID, the split errors it writes to paired.json
and the interval for FID∞ in metrics.json, all made per run by pipeline/evaluate/intervals.py (the one
run's sampling error; it is not an interval over seeds).

A FID is positive and skewed over seeds, so everything is on the log scale (pipeline.stats.logscale):
- FID ratio of two run types (`fid_ratio`, every verdict): per-seed log FID differences, between-seed
  variance plus the shared-noise term from the split errors on the shared samples, Student-t with n − 1 df,
  mapped back with exp.
- mean FID of a run type (`mean_fids`): the geometric mean over seeds with its interval, positive by
  construction (never cut at 0). Without paired.json (and for FID∞, which has no joint replicates)
  `seed_mean_ci` on log FID adds each run's own variance as if the runs' sampling errors were independent.
  A FID∞ ≤ 0 (the extrapolation can go there) has no log: its mean is then arithmetic and says so.
- ΔFID (`fid_difference`): the additive difference, kept as a descriptive column; no verdict uses it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import pandas as pd

from pipeline.stats.logscale import RatioEstimate, geometric_mean, log_ratio
from pipeline.stats.paired import SeedEstimate, paired
from pipeline.stats.tdist import quantile


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


def seed_mean_ci(values: Sequence[float], boot_stds: Sequence[Optional[float]], level: float = 0.95) -> Estimate:
    """Mean of per-seed `values`, SE² = between-seed variance / n + Σ b_s² / n² (b_s a run's own
    sampling SD), t(n − 1) for n >= 2, normal for one seed; one seed and no b_s: no interval."""
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
    q = quantile(level, n - 1 if n >= 2 else math.inf)
    half = q * math.sqrt(between / n + boot)
    if n >= 2:
        parts = "between-seed variance / n" + (" + bootstrap variances / n²" if have_boot else
                                              " (no bootstrap std in the metrics)")
        rule = f"Student-t, {n - 1} df over {n} seeds, SE² = {parts}"
    else:
        rule = "1 seed: bootstrap over samples only (normal); seed variation not measured"
    return Estimate(mean, mean - half, mean + half, n, rule)


def fid_inf_std(rows: pd.DataFrame) -> pd.Series:
    """A std for FID∞ from its 95 % interval (width / 2z: the eval's interval is normal), for combining it
    like `fid_std`."""
    return (rows["fid_inf_high"] - rows["fid_inf_low"]) / (2 * quantile(0.95, math.inf))


def log_seed_mean_ci(values: Sequence[float], stds: Sequence[Optional[float]], level: float = 0.95) -> Estimate:
    """Geometric mean of positive per-seed `values` with `seed_mean_ci` on log values (each run's own SD
    moved to the log scale as sd / value); arithmetic and uncut when a value is <= 0 (no log)."""
    vals = [float(v) for v in values]
    if not vals or any(not _finite(v) or v <= 0 for v in vals):
        e = seed_mean_ci(values, stds, level)
        return Estimate(e.mean, e.low, e.high, e.n, e.rule + "; arithmetic mean (a value <= 0 has no log)")
    sd = [float(b) / v if _finite(b) else None for b, v in zip(stds, vals)]
    e = seed_mean_ci([math.log(v) for v in vals], sd, level)
    ex = lambda x: math.exp(x) if _finite(x) else math.nan
    return Estimate(ex(e.mean), ex(e.low), ex(e.high), e.n,
                    "geometric mean, interval on the mean log value mapped back with exp; " + e.rule)


def mean_fids(g: pd.DataFrame, runs: Optional[dict], level: float) -> tuple[Estimate, Estimate]:
    """The geometric-mean FID and FID∞ over the seeds of one run type's rows `g` (sorted by seed), with
    intervals on the log scale (positive, never cut). With `runs` (paired.json per run) the FID's
    interval has the shared-noise term."""
    if runs is not None:
        reps = np.stack([runs[(str(k), int(s), int(r))].split for k, s, r in zip(g["kind"], g["seed"], g["round"])])
        e = geometric_mean(g["fid"].tolist(), reps, kind="split", level=level)
        fid = Estimate(e.ratio, e.low, e.high, e.n, e.rule)
    else:
        fid = log_seed_mean_ci(g["fid"].tolist(), g["fid_std"].tolist(), level)
    inf = log_seed_mean_ci(g["fid_inf"].tolist(), fid_inf_std(g).tolist(), level)
    return fid, inf


def fid_of(df: pd.DataFrame, kind: str, seed: int, k: int) -> float:
    """One run's FID from the eval table (NaN when that run is not in it)."""
    row = df[(df["kind"] == kind) & (df["seed"] == seed) & (df["round"] == k)]
    return float(row["fid"].iloc[0]) if len(row) else math.nan


def fid_ratio(df: pd.DataFrame, runs: dict, a: tuple[str, int], b: tuple[str, int], seeds, level: float,
              null_ratio: float = 1.0) -> RatioEstimate:
    """Geometric-mean FID(a) / FID(b) over `seeds`, a and b = (kind, round), paired by seed and by shared
    samples, with its tests against ratio = `null_ratio` (the margin 1 + report.margin for
    non-inferiority, 1 for superiority)."""
    va = [fid_of(df, a[0], s, a[1]) for s in seeds]
    vb = [fid_of(df, b[0], s, b[1]) for s in seeds]
    ra = np.stack([runs[(a[0], s, a[1])].split for s in seeds])
    rb = np.stack([runs[(b[0], s, b[1])].split for s in seeds])
    return log_ratio(va, vb, ra, rb, kind="split", level=level, null_ratio=null_ratio)


def fid_difference(df: pd.DataFrame, runs: dict, a: tuple[str, int], b: tuple[str, int], seeds, level: float,
                   null: float = 0.0) -> SeedEstimate:
    """FID(a) − FID(b) over `seeds`, a and b = (kind, round), paired by seed and by shared samples
    (descriptive: verdicts use `fid_ratio`)."""
    va = [fid_of(df, a[0], s, a[1]) for s in seeds]
    vb = [fid_of(df, b[0], s, b[1]) for s in seeds]
    ra = np.stack([runs[(a[0], s, a[1])].split for s in seeds])
    rb = np.stack([runs[(b[0], s, b[1])].split for s in seeds])
    return paired(va, vb, ra, rb, kind="split", level=level, null=null)
