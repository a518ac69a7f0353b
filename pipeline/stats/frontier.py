"""The sparsest non-inferior ticket of one run, decided by a fixed-sequence test (pure numpy/pandas):
per seed, over seeds and across margins. Numbers and statuses only; pipeline/report/text.py words them,
pipeline/stats/ranking.py compares schedules.

Inputs are intervals, not runs: for each sparse round k = 1..K (increasing sparsity; round 0 is the
dense reference) the caller gives the effect of the ticket against dense with the upper end of its
interval at the configured level (how that interval is made is the caller's business). The report
gives log(FID(ticket) / FID(dense)) (pipeline/stats/logscale.py) against the ratio margin
log(1 + fraction) (`ratio_margin`); an additive Δ = FID(ticket) − FID(dense) against fraction × FID(dense)
(`relative_margin`) is the same rule on the FID scale.

Rule (issue 17; the tests themselves are pipeline.stats.verdicts's `within_margin` and `fixed_sequence`):
- Margin, set in advance and relative to dense: a FID ratio below 1 + fraction (`ratio_margin`, on the
  log scale), or margin = fraction × FID(dense) on the FID scale (`relative_margin`).
- A round passes non-inferiority when its interval's upper end < margin. A round without a finite
  upper end fails: it cannot show non-inferiority.
- Fixed sequence: rounds are tested in increasing sparsity and testing stops at the first failure.
  The sparsest non-inferior ticket is the last round before that failure. A round that passes after
  the failure does not count. Testing in a pre-set order is what keeps the family-wise error at the
  level of one test without a multiplicity correction; cherry-picking a later passing round would not.
- The result is *bracketed* when some round fails after at least one passes: the sparsity where the
  upper bound crosses the margin lies between the last passing and the first failing round. It is
  *censored* when every round passes: the true answer is "≥ X %" at the last round studied. It is
  *none* when round 1 already fails (only dense, round 0, is non-inferior; the crossing lies below
  round 1's sparsity).
- An interpolated crossing is given for a bracketed result: the margin crossing of the upper bound,
  linear in log(remaining fraction) between the bracketing rounds. It is labelled "interpolated": no
  round was trained there.
- A dense baseline that has not converged makes every sentence and verdict provisional.

Sparsities are fractions in [0, 1) (0.9 = 90 %). "Prunable" counts the weights the schedule may
prune; "global" counts all parameters.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Hashable, Mapping, Optional, Sequence, Union

import numpy as np
import pandas as pd

from pipeline.stats.verdicts import fixed_sequence

BRACKETED, CENSORED, NONE = "bracketed", "censored", "none"


# -- inputs --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RoundInterval:
    """One sparse round's effect against dense (log FID ratio, or ΔFID) and the upper end of its interval."""
    k: int
    prunable_sparsity: float
    global_sparsity: float
    delta: float
    upper: float
    lower: Optional[float] = None


RATIO, FID = "log ratio", "fid"


@dataclass(frozen=True)
class Margin:
    """The non-inferiority margin on the effect's scale and how it was set (fraction None: absolute).
    scale RATIO: `absolute` = log(1 + fraction), the effect a log FID ratio; FID: FID units."""
    absolute: float
    fraction: Optional[float]
    dense_fid: Optional[float]
    scale: str = FID


def ratio_margin(fraction: float) -> Margin:
    """FID(ticket) / FID(dense) < 1 + fraction, on the log scale: log(1 + fraction)."""
    fraction = float(fraction)
    if not (math.isfinite(fraction) and fraction > 0):
        raise ValueError(f"margin fraction must be a positive number, got {fraction!r}")
    return Margin(math.log1p(fraction), fraction, None, RATIO)


def relative_margin(fraction: float, dense_fid: float) -> Margin:
    """margin = fraction × FID(dense): a margin in FID units that scales with the baseline."""
    fraction, dense_fid = float(fraction), float(dense_fid)
    if not (math.isfinite(fraction) and fraction > 0):
        raise ValueError(f"margin fraction must be a positive number, got {fraction!r}")
    if not (math.isfinite(dense_fid) and dense_fid > 0):
        raise ValueError(f"dense FID must be a positive number, got {dense_fid!r}")
    return Margin(fraction * dense_fid, fraction, dense_fid)


def _as_margin(margin: Union[Margin, float]) -> Margin:
    if isinstance(margin, Margin):
        return margin
    m = float(margin)
    if not (math.isfinite(m) and m > 0):
        raise ValueError(f"margin must be a positive number, got {margin!r}")
    return Margin(m, None, None)


def converged_flag(baseline_converged: Any) -> bool:
    """A bool, or any result with a `.converged` attribute (pipeline.stats.convergence)."""
    if isinstance(baseline_converged, (bool, np.bool_)):
        return bool(baseline_converged)
    if hasattr(baseline_converged, "converged"):
        return bool(baseline_converged.converged)
    raise TypeError("baseline_converged must be a bool or a result with a .converged attribute")


# -- the fixed-sequence decision -----------------------------------------------------------------
@dataclass(frozen=True)
class Frontier:
    """Where the fixed-sequence non-inferiority test puts the sparsest non-inferior ticket.

    `round` is None when no sparse round is non-inferior (status "none"); `stopped_at` is None when
    every round passes (status "censored"). `bracket` and `global_bracket` bound the crossing sparsity
    ((0, s1) for "none", None when censored). `crossing` is the interpolated crossing (bracketed only).
    `ignored_after_stop` lists rounds that pass after the stop and, by the rule, do not count.
    `interval` names the interval whose upper end was tested (for the rule's text).
    """
    status: str
    round: Optional[int]
    prunable_sparsity: Optional[float]
    global_sparsity: Optional[float]
    stopped_at: Optional[int]
    stopped_prunable_sparsity: Optional[float]
    stopped_global_sparsity: Optional[float]
    stopped_upper: Optional[float]
    bracket: Optional[tuple[float, float]]
    global_bracket: Optional[tuple[float, float]]
    crossing: Optional[float]
    crossing_global: Optional[float]
    ignored_after_stop: tuple[int, ...]
    n_rounds: int
    last_round: int
    last_prunable_sparsity: float
    last_global_sparsity: float
    margin: float
    margin_fraction: Optional[float]
    dense_fid: Optional[float]
    provisional: bool
    interval: str
    scale: str = FID

    @property
    def ratio(self) -> bool:
        """The effects and the margin are log FID ratios (print them with exp)."""
        return self.scale == RATIO

    @property
    def censored(self) -> bool:
        return self.status == CENSORED

    @property
    def bracketed(self) -> bool:
        return self.status == BRACKETED

    @property
    def sparsity_or_dense(self) -> float:
        """Prunable sparsity of the sparsest non-inferior ticket; 0.0 (dense, round 0) for "none"."""
        return 0.0 if self.prunable_sparsity is None else self.prunable_sparsity

    @property
    def global_sparsity_or_dense(self) -> float:
        return 0.0 if self.global_sparsity is None else self.global_sparsity

    @property
    def round_or_dense(self) -> int:
        return 0 if self.round is None else self.round


def _validate(rounds: Sequence[RoundInterval]) -> list[RoundInterval]:
    rs = list(rounds)
    if not rs:
        raise ValueError("the fixed-sequence test needs at least one sparse round")
    for r in rs:
        if not (0 < r.prunable_sparsity < 1) or not (0 <= r.global_sparsity < 1):
            raise ValueError(f"round {r.k}: sparsities are fractions in [0, 1), got "
                             f"{r.prunable_sparsity!r} prunable, {r.global_sparsity!r} global")
        if r.k < 1:
            raise ValueError(f"round {r.k}: sparse rounds are numbered from 1 (round 0 is dense)")
    for a, b in zip(rs, rs[1:]):
        if not (b.prunable_sparsity > a.prunable_sparsity and b.k > a.k):
            raise ValueError(f"rounds must come in increasing sparsity: round {a.k} "
                             f"({a.prunable_sparsity!r}) then round {b.k} ({b.prunable_sparsity!r})")
    return rs


def _log_remaining_crossing(s_a: float, s_b: float, t: float) -> float:
    xa, xb = math.log1p(-s_a), math.log1p(-s_b)
    return -math.expm1(xa + t * (xb - xa))


def sparsest_non_inferior(rounds: Sequence[RoundInterval], margin: Union[Margin, float], *,
                          baseline_converged: Any = True, interval: str = "95 % upper bound") -> Frontier:
    """Apply the fixed-sequence rule (module docstring) to one sequence of rounds."""
    rs = _validate(rounds)
    m = _as_margin(margin)
    provisional = not converged_flag(baseline_converged)
    i_pass, i_fail, i_ignored = fixed_sequence([r.upper for r in rs], m.absolute)
    last_pass = rs[i_pass] if i_pass is not None else None
    fail = rs[i_fail] if i_fail is not None else None
    ignored = tuple(rs[i].k for i in i_ignored)
    last = rs[-1]
    crossing = crossing_g = None
    bracket = g_bracket = None
    if fail is None:
        status = CENSORED
    elif last_pass is None:
        status = NONE
        bracket = (0.0, fail.prunable_sparsity)
        g_bracket = (0.0, fail.global_sparsity)
    else:
        status = BRACKETED
        bracket = (last_pass.prunable_sparsity, fail.prunable_sparsity)
        g_bracket = (last_pass.global_sparsity, fail.global_sparsity)
        if math.isfinite(float(fail.upper)):
            t = (m.absolute - last_pass.upper) / (fail.upper - last_pass.upper)
            crossing = _log_remaining_crossing(*bracket, t)
            crossing_g = _log_remaining_crossing(*g_bracket, t)
    return Frontier(
        status=status,
        round=last_pass.k if last_pass else None,
        prunable_sparsity=last_pass.prunable_sparsity if last_pass else None,
        global_sparsity=last_pass.global_sparsity if last_pass else None,
        stopped_at=fail.k if fail else None,
        stopped_prunable_sparsity=fail.prunable_sparsity if fail else None,
        stopped_global_sparsity=fail.global_sparsity if fail else None,
        stopped_upper=fail.upper if fail else None,
        bracket=bracket, global_bracket=g_bracket, crossing=crossing, crossing_global=crossing_g,
        ignored_after_stop=ignored, n_rounds=len(rs),
        last_round=last.k, last_prunable_sparsity=last.prunable_sparsity,
        last_global_sparsity=last.global_sparsity,
        margin=m.absolute, margin_fraction=m.fraction, dense_fid=m.dense_fid, provisional=provisional,
        interval=interval, scale=m.scale)


# -- per seed and over seeds ---------------------------------------------------------------------
@dataclass(frozen=True)
class SeedsFrontier:
    """The rule applied to each seed's rounds and to the over-seed (mean) rounds.

    Summaries count a seed with no non-inferior round as sparsity 0 (dense, round 0, is non-inferior
    to itself); a censored seed's value is a lower bound, and `n_censored` says how many there are.
    """
    per_seed: tuple[tuple[Hashable, Frontier], ...]
    over_seeds: Optional[Frontier]
    n_seeds: int
    n_censored: int
    n_bracketed: int
    n_none: int
    sparsity_min: float
    sparsity_median: float
    sparsity_max: float
    global_sparsity_min: float
    global_sparsity_median: float
    global_sparsity_max: float
    provisional: bool

    def seed(self, s: Hashable) -> Frontier:
        for k, f in self.per_seed:
            if k == s:
                return f
        raise KeyError(s)

    @property
    def seeds(self) -> tuple[Hashable, ...]:
        return tuple(k for k, _ in self.per_seed)


def frontier_over_seeds(per_seed: Mapping[Hashable, Sequence[RoundInterval]],
                        over_seeds: Optional[Sequence[RoundInterval]], fraction: float,
                        dense_fid: Optional[Mapping[Hashable, float]], dense_fid_mean: Optional[float] = None, *,
                        baseline_converged: Any = True, interval: str = "95 % upper bound",
                        ratio: bool = False) -> SeedsFrontier:
    """`ratio`: the rounds hold log FID ratios and every margin is `ratio_margin(fraction)` (no dense FID
    needed). Else per seed: margin = fraction × that seed's dense FID; over seeds: margin = fraction ×
    the mean dense FID (`dense_fid_mean`, default the mean of `dense_fid`), applied to the mean rounds."""
    if not per_seed:
        raise ValueError("no seeds")
    missing = [] if ratio else [s for s in per_seed if s not in (dense_fid or {})]
    if missing:
        raise ValueError(f"no dense FID for seeds {missing}")
    provisional = not converged_flag(baseline_converged)

    def margin(fid: Optional[float]) -> Margin:
        return ratio_margin(fraction) if ratio else relative_margin(fraction, fid)

    results = tuple((s, sparsest_non_inferior(rs, margin(None if ratio else dense_fid[s]),
                                              baseline_converged=not provisional, interval=interval))
                    for s, rs in per_seed.items())
    mean_fid = None
    if not ratio:
        mean_fid = float(np.mean([dense_fid[s] for s in per_seed])) if dense_fid_mean is None else dense_fid_mean
    pooled = (sparsest_non_inferior(over_seeds, margin(mean_fid), baseline_converged=not provisional,
                                    interval=interval)
              if over_seeds is not None else None)
    fs = [f for _, f in results]
    sp = np.array([f.sparsity_or_dense for f in fs])
    gs = np.array([f.global_sparsity_or_dense for f in fs])
    return SeedsFrontier(
        per_seed=results, over_seeds=pooled, n_seeds=len(fs), n_censored=sum(f.censored for f in fs),
        n_bracketed=sum(f.bracketed for f in fs), n_none=sum(f.status == NONE for f in fs),
        sparsity_min=float(sp.min()), sparsity_median=float(np.median(sp)), sparsity_max=float(sp.max()),
        global_sparsity_min=float(gs.min()), global_sparsity_median=float(np.median(gs)),
        global_sparsity_max=float(gs.max()), provisional=provisional)


# -- the verdict across margins ------------------------------------------------------------------
def margins_table(rounds: Sequence[RoundInterval], dense_fid: Optional[float],
                  fractions: Sequence[float] = (0.05, 0.10, 0.20), *,
                  per_seed: Optional[Mapping[Hashable, Sequence[RoundInterval]]] = None,
                  per_seed_dense_fid: Optional[Mapping[Hashable, float]] = None,
                  baseline_converged: Any = True, interval: str = "95 % upper bound",
                  ratio: bool = False) -> pd.DataFrame:
    """One row per margin fraction (ascending): the fixed-sequence decision on `rounds` (typically the
    over-seed mean rounds) at margin = fraction × `dense_fid`. With `per_seed` (and its dense FIDs)
    each row also carries the per-seed min / median / max and the number of censored seeds. Where no
    sparse round is non-inferior (status "none") the row's round is 0 and its sparsities 0 (dense).

    A larger margin never gives a less sparse ticket: every round that passes at a smaller margin
    passes at a larger one, so the first failure can only move later. `ratio`: log FID ratios against
    `ratio_margin(fraction)` (the row's margin is then the ratio 1 + fraction; no dense FID needed)."""
    if per_seed is not None and per_seed_dense_fid is None and not ratio:
        raise ValueError("per_seed needs per_seed_dense_fid")
    provisional = not converged_flag(baseline_converged)
    rows = []
    for frac in sorted(float(f) for f in fractions):
        m = ratio_margin(frac) if ratio else relative_margin(frac, dense_fid)
        f = sparsest_non_inferior(rounds, m, baseline_converged=not provisional, interval=interval)
        row = {"margin_fraction": frac, "margin": 1 + frac if ratio else m.absolute, "round": f.round_or_dense,
               "prunable_sparsity": f.sparsity_or_dense, "global_sparsity": f.global_sparsity_or_dense,
               "status": f.status, "stopped_at": f.stopped_at, "crossing_interpolated": f.crossing,
               "provisional": provisional}
        if per_seed is not None:
            sf = frontier_over_seeds(per_seed, None, frac, per_seed_dense_fid,
                                     baseline_converged=not provisional, interval=interval, ratio=ratio)
            row.update({"seeds": sf.n_seeds, "seeds_censored": sf.n_censored,
                        "seeds_sparsity_min": sf.sparsity_min, "seeds_sparsity_median": sf.sparsity_median,
                        "seeds_sparsity_max": sf.sparsity_max})
        rows.append(row)
    df = pd.DataFrame(rows)
    df["stopped_at"] = df["stopped_at"].astype("Int64")
    return df
