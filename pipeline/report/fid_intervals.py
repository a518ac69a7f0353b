"""Where a FID interval is computed, for everything the report prints over seeds: the mean FID and
FID∞ of a run type, and the difference FID(a) − FID(b) of two run types paired by seed and by shared
samples. Each comes from one eval's own numbers: its FID, the split errors it writes to paired.json
and the interval for FID∞ in metrics.json, all made per run by pipeline/evaluate/intervals.py (the one
run's sampling error; it is not an interval over seeds).

- mean FID and ΔFID: pipeline.stats.paired (between-seed variance plus the shared-noise term from the
  split errors on the shared samples, Student-t with Satterthwaite's df).
- FID∞ (and a mean FID without paired.json): `seed_mean_ci`, which adds each run's own variance as if
  the runs' sampling errors were independent (no joint replicates of FID∞ exist). It errs wide on a
  difference (the shared noise is counted twice), which is why no verdict uses it.

A FID is >= 0: a mean's interval over few seeds is cut at 0 (pipeline.stats.tdist.cut).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import pandas as pd

from pipeline.stats.paired import SeedEstimate, one_sample, paired
from pipeline.stats.tdist import cut, quantile


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


def _cut_at_zero(e: Estimate) -> Estimate:
    low, high = cut(e.low, e.high)
    return Estimate(e.mean, low, high, e.n, e.rule + "; truncated at 0")


def mean_fids(g: pd.DataFrame, runs: Optional[dict], level: float) -> tuple[Estimate, Estimate]:
    """The mean FID and FID∞ over the seeds of one run type's rows `g` (sorted by seed), with their
    intervals cut at 0. With `runs` (paired.json per run) the FID's interval has the shared-noise term."""
    if runs is not None:
        reps = np.stack([runs[(str(k), int(s), int(r))].split for k, s, r in zip(g["kind"], g["seed"], g["round"])])
        e = one_sample(g["fid"].tolist(), reps, kind="split", level=level)
        fid = Estimate(e.estimate, e.low, e.high, e.n, e.rule)
    else:
        fid = seed_mean_ci(g["fid"].tolist(), g["fid_std"].tolist())
    inf = seed_mean_ci(g["fid_inf"].tolist(), fid_inf_std(g).tolist())
    return _cut_at_zero(fid), _cut_at_zero(inf)


def fid_of(df: pd.DataFrame, kind: str, seed: int, k: int) -> float:
    """One run's FID from the eval table (NaN when that run is not in it)."""
    row = df[(df["kind"] == kind) & (df["seed"] == seed) & (df["round"] == k)]
    return float(row["fid"].iloc[0]) if len(row) else math.nan


def fid_difference(df: pd.DataFrame, runs: dict, a: tuple[str, int], b: tuple[str, int], seeds, level: float,
                   null: float = 0.0) -> SeedEstimate:
    """FID(a) − FID(b) over `seeds`, a and b = (kind, round), paired by seed and by shared samples."""
    va = [fid_of(df, a[0], s, a[1]) for s in seeds]
    vb = [fid_of(df, b[0], s, b[1]) for s in seeds]
    ra = np.stack([runs[(a[0], s, a[1])].split for s in seeds])
    rb = np.stack([runs[(b[0], s, b[1])].split for s in seeds])
    return paired(va, vb, ra, rb, kind="split", level=level, null=null)
