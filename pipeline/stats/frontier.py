"""The sparsest non-inferior ticket, decided by a fixed-sequence test (pure numpy/scipy/pandas).

Inputs are intervals, not runs: for each sparse round k = 1..K (increasing sparsity; round 0 is the
dense reference) the caller gives Δ = FID(ticket) − FID(dense) with the upper end of its interval at
the configured level (how that interval is made is the caller's business, e.g. pipeline/stats/paired.py).

Rule (DESIGN.md §6; issue 17):
- Margin, set in advance and relative to dense: margin = fraction × FID(dense) (`relative_margin`).
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
from dataclasses import dataclass, field
from typing import Any, Hashable, Mapping, Optional, Sequence, Union

import numpy as np
import pandas as pd
from scipy import stats as _st

SUPPORTED, CONTRADICTED, INCONCLUSIVE = "supported", "contradicted", "inconclusive at this scale"
VERDICTS = (SUPPORTED, CONTRADICTED, INCONCLUSIVE)
BRACKETED, CENSORED, NONE = "bracketed", "censored", "none"
PROVISIONAL = "provisional: dense baseline not converged"
CENSORED_PHRASE = "(last round studied, not bracketed)"


# -- inputs --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RoundInterval:
    """One sparse round's ΔFID = FID(ticket) − FID(dense) and the upper end of its interval."""
    k: int
    prunable_sparsity: float
    global_sparsity: float
    delta: float
    upper: float
    lower: Optional[float] = None


@dataclass(frozen=True)
class Margin:
    """The non-inferiority margin in FID units and how it was set."""
    absolute: float
    fraction: Optional[float]
    dense_fid: Optional[float]
    rule: str


def relative_margin(fraction: float, dense_fid: float) -> Margin:
    """margin = fraction × FID(dense): a margin in FID units that scales with the baseline."""
    fraction, dense_fid = float(fraction), float(dense_fid)
    if not (math.isfinite(fraction) and fraction > 0):
        raise ValueError(f"margin fraction must be a positive number, got {fraction!r}")
    if not (math.isfinite(dense_fid) and dense_fid > 0):
        raise ValueError(f"dense FID must be a positive number, got {dense_fid!r}")
    absolute = fraction * dense_fid
    return Margin(absolute, fraction, dense_fid,
                  f"margin = {_frac(fraction)} of dense FID {dense_fid:.2f} = {absolute:.3g} FID")


def _as_margin(margin: Union[Margin, float]) -> Margin:
    if isinstance(margin, Margin):
        return margin
    m = float(margin)
    if not (math.isfinite(m) and m > 0):
        raise ValueError(f"margin must be a positive number, got {margin!r}")
    return Margin(m, None, None, f"margin = {m:.3g} FID (absolute, not relative to dense)")


def _converged_flag(baseline_converged: Any) -> bool:
    """A bool, or any result with a `.converged` attribute (pipeline.stats.convergence)."""
    if isinstance(baseline_converged, (bool, np.bool_)):
        return bool(baseline_converged)
    if hasattr(baseline_converged, "converged"):
        return bool(baseline_converged.converged)
    raise TypeError("baseline_converged must be a bool or a result with a .converged attribute")


# -- formatting ----------------------------------------------------------------------------------
def _pct(s: float) -> str:
    """A sparsity as a percentage; two decimals near 100 % so that 99.96 % never prints as 100.0 %."""
    p = 100 * s
    return f"{p:.2f} %" if p >= 99.5 else f"{p:.1f} %"


def _frac(f: float) -> str:
    return f"{100 * f:g} %"


def _qualify(sentence: str, provisional: bool) -> str:
    return f"{PROVISIONAL}; {sentence}" if provisional else sentence


# -- the fixed-sequence decision -----------------------------------------------------------------
@dataclass(frozen=True)
class Frontier:
    """Where the fixed-sequence non-inferiority test puts the sparsest non-inferior ticket.

    `round` is None when no sparse round is non-inferior (status "none"); `stopped_at` is None when
    every round passes (status "censored"). `bracket` and `global_bracket` bound the crossing sparsity
    ((0, s1) for "none", None when censored). `crossing` is the interpolated crossing (bracketed only).
    `ignored_after_stop` lists rounds that pass after the stop and, by the rule, do not count.
    """
    status: str
    round: Optional[int]
    prunable_sparsity: Optional[float]
    global_sparsity: Optional[float]
    stopped_at: Optional[int]
    stopped_prunable_sparsity: Optional[float]
    stopped_global_sparsity: Optional[float]
    bracket: Optional[tuple[float, float]]
    global_bracket: Optional[tuple[float, float]]
    crossing: Optional[float]
    crossing_global: Optional[float]
    ignored_after_stop: tuple[int, ...]
    last_round: int
    last_prunable_sparsity: float
    last_global_sparsity: float
    margin: float
    margin_fraction: Optional[float]
    provisional: bool
    sentence: str
    rule: str

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


def _passes(r: RoundInterval, margin: float) -> bool:
    return r.upper is not None and math.isfinite(float(r.upper)) and float(r.upper) < margin


def _log_remaining_crossing(s_a: float, s_b: float, t: float) -> float:
    xa, xb = math.log1p(-s_a), math.log1p(-s_b)
    return -math.expm1(xa + t * (xb - xa))


def fixed_sequence_rule(m: Margin, interval: str) -> str:
    return (f"fixed-sequence non-inferiority: rounds tested in increasing sparsity; a round passes when "
            f"the upper end of its ΔFID interval ({interval}) < margin, {m.rule}; testing stops at the "
            f"first failure and a round that passes after it does not count; a round without an interval "
            f"fails; crossing interpolated linearly in log(remaining fraction) between the bracketing rounds")


def sparsest_non_inferior(rounds: Sequence[RoundInterval], margin: Union[Margin, float], *,
                          baseline_converged: Any = True, interval: str = "95 % upper bound") -> Frontier:
    """Apply the fixed-sequence rule (module docstring) to one sequence of rounds."""
    rs = _validate(rounds)
    m = _as_margin(margin)
    provisional = not _converged_flag(baseline_converged)
    last_pass: Optional[RoundInterval] = None
    fail: Optional[RoundInterval] = None
    for r in rs:
        if _passes(r, m.absolute):
            last_pass = r
        else:
            fail = r
            break
    ignored: tuple[int, ...] = ()
    if fail is not None:
        ignored = tuple(r.k for r in rs if r.k > fail.k and _passes(r, m.absolute))
    last = rs[-1]
    where = _margin_words(m)

    crossing = crossing_g = None
    bracket = g_bracket = None
    if fail is None:
        status = CENSORED
        sentence = (f"sparsest non-inferior ticket ≥ {_pct(last.prunable_sparsity)} {CENSORED_PHRASE}: "
                    f"round {last.k}, ≥ {_pct(last.global_sparsity)} global; all {len(rs)} rounds pass "
                    f"({where})")
    elif last_pass is None:
        status = NONE
        bracket = (0.0, fail.prunable_sparsity)
        g_bracket = (0.0, fail.global_sparsity)
        sentence = (f"no round is non-inferior: round {fail.k} ({_pct(fail.prunable_sparsity)} prunable, "
                    f"{_pct(fail.global_sparsity)} global) already fails ({_fail_words(fail, m)}); the "
                    f"crossing lies below {_pct(fail.prunable_sparsity)} prunable")
    else:
        status = BRACKETED
        bracket = (last_pass.prunable_sparsity, fail.prunable_sparsity)
        g_bracket = (last_pass.global_sparsity, fail.global_sparsity)
        if math.isfinite(float(fail.upper)):
            t = (m.absolute - last_pass.upper) / (fail.upper - last_pass.upper)
            crossing = _log_remaining_crossing(*bracket, t)
            crossing_g = _log_remaining_crossing(*g_bracket, t)
        interp = f" (interpolated ≈ {_pct(crossing)})" if crossing is not None else ""
        sentence = (f"sparsest non-inferior ticket: round {last_pass.k} at {_pct(last_pass.prunable_sparsity)} "
                    f"prunable ({_pct(last_pass.global_sparsity)} global); the crossing lies between "
                    f"{_pct(bracket[0])} and {_pct(bracket[1])} prunable{interp}; the fixed sequence "
                    f"stops at round {fail.k} ({_fail_words(fail, m)})")
    if ignored:
        words = ", ".join(str(k) for k in ignored)
        sentence += (f"; round{'s' if len(ignored) > 1 else ''} {words} pass{'' if len(ignored) > 1 else 'es'} "
                     f"after the stop and do{'' if len(ignored) > 1 else 'es'} not count")
    return Frontier(
        status=status,
        round=last_pass.k if last_pass else None,
        prunable_sparsity=last_pass.prunable_sparsity if last_pass else None,
        global_sparsity=last_pass.global_sparsity if last_pass else None,
        stopped_at=fail.k if fail else None,
        stopped_prunable_sparsity=fail.prunable_sparsity if fail else None,
        stopped_global_sparsity=fail.global_sparsity if fail else None,
        bracket=bracket, global_bracket=g_bracket, crossing=crossing, crossing_global=crossing_g,
        ignored_after_stop=ignored,
        last_round=last.k, last_prunable_sparsity=last.prunable_sparsity,
        last_global_sparsity=last.global_sparsity,
        margin=m.absolute, margin_fraction=m.fraction, provisional=provisional,
        sentence=_qualify(sentence, provisional), rule=fixed_sequence_rule(m, interval))


def _margin_words(m: Margin) -> str:
    if m.fraction is not None:
        return f"upper bound < margin {m.absolute:.2f} = {_frac(m.fraction)} of dense FID {m.dense_fid:.2f}"
    return f"upper bound < margin {m.absolute:.2f} FID"


def _fail_words(r: RoundInterval, m: Margin) -> str:
    if r.upper is None or not math.isfinite(float(r.upper)):
        return "no interval"
    tail = f" = {_frac(m.fraction)} of dense FID {m.dense_fid:.2f}" if m.fraction is not None else " FID"
    return f"upper bound {r.upper:.2f} ≥ margin {m.absolute:.2f}{tail}"


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
    sentence: str

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
                        dense_fid: Mapping[Hashable, float], dense_fid_mean: Optional[float] = None, *,
                        baseline_converged: Any = True, interval: str = "95 % upper bound") -> SeedsFrontier:
    """Per seed: margin = fraction × that seed's dense FID. Over seeds: margin = fraction × the mean
    dense FID (`dense_fid_mean`, default the mean of `dense_fid`), applied to the mean rounds."""
    if not per_seed:
        raise ValueError("no seeds")
    missing = [s for s in per_seed if s not in dense_fid]
    if missing:
        raise ValueError(f"no dense FID for seeds {missing}")
    provisional = not _converged_flag(baseline_converged)
    results = tuple((s, sparsest_non_inferior(rs, relative_margin(fraction, dense_fid[s]),
                                              baseline_converged=not provisional, interval=interval))
                    for s, rs in per_seed.items())
    mean_fid = float(np.mean([dense_fid[s] for s in per_seed])) if dense_fid_mean is None else dense_fid_mean
    pooled = (sparsest_non_inferior(over_seeds, relative_margin(fraction, mean_fid),
                                    baseline_converged=not provisional, interval=interval)
              if over_seeds is not None else None)
    fs = [f for _, f in results]
    sp = np.array([f.sparsity_or_dense for f in fs])
    gs = np.array([f.global_sparsity_or_dense for f in fs])
    n = len(fs)
    n_cens = sum(f.censored for f in fs)
    n_none = sum(f.status == NONE for f in fs)
    summary = (f"per seed: sparsest non-inferior ticket {_pct(sp.min())} / {_pct(float(np.median(sp)))} / "
               f"{_pct(sp.max())} prunable (min / median / max over {n} seed{'s' if n != 1 else ''}; "
               f"global {_pct(gs.min())} / {_pct(float(np.median(gs)))} / {_pct(gs.max())})")
    if n_cens:
        summary += (f"; {n_cens} of {n} censored at the last round studied "
                    f"(≥ {_pct(max(f.last_prunable_sparsity for f in fs if f.censored))}, not bracketed: a lower bound)")
    if n_none:
        summary += f"; {n_none} of {n} with no non-inferior round (counted as dense, 0 %)"
    stops = ", ".join(f"seed {s}: {'never (all pass)' if f.stopped_at is None else f'round {f.stopped_at}'}" for s, f in results)
    summary += f"; the sequence stops at {stops}"
    head = f"over seeds (mean ΔFID): {_strip(pooled.sentence)}; " if pooled is not None else ""
    return SeedsFrontier(
        per_seed=results, over_seeds=pooled, n_seeds=n, n_censored=n_cens,
        n_bracketed=sum(f.bracketed for f in fs), n_none=n_none,
        sparsity_min=float(sp.min()), sparsity_median=float(np.median(sp)), sparsity_max=float(sp.max()),
        global_sparsity_min=float(gs.min()), global_sparsity_median=float(np.median(gs)),
        global_sparsity_max=float(gs.max()), provisional=provisional,
        sentence=_qualify(head + summary, provisional))


def _strip(sentence: str) -> str:
    prefix = f"{PROVISIONAL}; "
    return sentence[len(prefix):] if sentence.startswith(prefix) else sentence


# -- the verdict across margins ------------------------------------------------------------------
def margins_table(rounds: Sequence[RoundInterval], dense_fid: float,
                  fractions: Sequence[float] = (0.05, 0.10, 0.20), *,
                  per_seed: Optional[Mapping[Hashable, Sequence[RoundInterval]]] = None,
                  per_seed_dense_fid: Optional[Mapping[Hashable, float]] = None,
                  baseline_converged: Any = True, interval: str = "95 % upper bound") -> pd.DataFrame:
    """One row per margin fraction (ascending): the fixed-sequence decision on `rounds` (typically the
    over-seed mean rounds) at margin = fraction × `dense_fid`. With `per_seed` (and its dense FIDs)
    each row also carries the per-seed min / median / max and the number of censored seeds. Where no
    sparse round is non-inferior (status "none") the row's round is 0 and its sparsities 0 (dense).

    A larger margin never gives a less sparse ticket: every round that passes at a smaller margin
    passes at a larger one, so the first failure can only move later."""
    if per_seed is not None and per_seed_dense_fid is None:
        raise ValueError("per_seed needs per_seed_dense_fid")
    provisional = not _converged_flag(baseline_converged)
    rows = []
    for frac in sorted(float(f) for f in fractions):
        m = relative_margin(frac, dense_fid)
        f = sparsest_non_inferior(rounds, m, baseline_converged=not provisional, interval=interval)
        row = {"margin_fraction": frac, "margin": m.absolute, "round": f.round_or_dense,
               "prunable_sparsity": f.sparsity_or_dense, "global_sparsity": f.global_sparsity_or_dense,
               "status": f.status, "stopped_at": f.stopped_at, "crossing_interpolated": f.crossing,
               "provisional": provisional, "sentence": f.sentence}
        if per_seed is not None:
            sf = frontier_over_seeds(per_seed, None, frac, per_seed_dense_fid,
                                     baseline_converged=not provisional, interval=interval)
            row.update({"seeds": sf.n_seeds, "seeds_censored": sf.n_censored,
                        "seeds_sparsity_min": sf.sparsity_min, "seeds_sparsity_median": sf.sparsity_median,
                        "seeds_sparsity_max": sf.sparsity_max})
        rows.append(row)
    df = pd.DataFrame(rows)
    df["stopped_at"] = df["stopped_at"].astype("Int64")
    return df


# -- schedules: ranking and the layerwise verdict ------------------------------------------------
@dataclass(frozen=True)
class ScheduleFrontier:
    """One schedule's sparsest non-inferior ticket per seed, with that ticket's cost.

    Tuples are aligned with `seeds`. A censored seed's sparsity is a lower bound (the true frontier
    lies at or beyond the last round studied, and its true MACs/storage at or below the ones given).
    """
    name: str
    seeds: tuple[Hashable, ...]
    sparsity: tuple[float, ...]
    global_sparsity: tuple[float, ...]
    macs: tuple[float, ...]
    storage: tuple[float, ...]
    censored: tuple[bool, ...]
    ceiling: tuple[float, ...]
    provisional: bool = False

    def __post_init__(self):
        n = len(self.seeds)
        for name in ("sparsity", "global_sparsity", "macs", "storage", "censored", "ceiling"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"{self.name}: {name} has {len(getattr(self, name))} values for {n} seeds")
        if len(set(self.seeds)) != n:
            raise ValueError(f"{self.name}: repeated seeds")

    @classmethod
    def from_frontiers(cls, name: str, frontiers: Union[SeedsFrontier, Mapping[Hashable, Frontier]],
                       macs: Mapping[Hashable, Mapping[int, float]],
                       storage: Mapping[Hashable, Mapping[int, float]]) -> "ScheduleFrontier":
        """`macs[seed][k]` and `storage[seed][k]` are the cost of round k (0 = dense) in that seed."""
        items = frontiers.per_seed if isinstance(frontiers, SeedsFrontier) else tuple(frontiers.items())
        seeds = tuple(s for s, _ in items)
        fs = [f for _, f in items]
        return cls(name=name, seeds=seeds,
                   sparsity=tuple(f.sparsity_or_dense for f in fs),
                   global_sparsity=tuple(f.global_sparsity_or_dense for f in fs),
                   macs=tuple(float(macs[s][f.round_or_dense]) for s, f in items),
                   storage=tuple(float(storage[s][f.round_or_dense]) for s, f in items),
                   censored=tuple(f.censored for f in fs),
                   ceiling=tuple(f.last_prunable_sparsity for f in fs),
                   provisional=any(f.provisional for f in fs))


def t_interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float, float, int]:
    """(mean, low, high, n): mean ± t((1+level)/2, n−1)·s/√n over seeds; no interval (NaN) for n < 2."""
    x = np.asarray([v for v in values if v is not None and math.isfinite(float(v))], dtype=float)
    n = len(x)
    if n == 0:
        return (math.nan, math.nan, math.nan, 0)
    mean = float(x.mean())
    if n < 2:
        return (mean, math.nan, math.nan, n)
    half = float(_st.t.ppf(0.5 + level / 2, n - 1) * x.std(ddof=1) / math.sqrt(n))
    return (mean, mean - half, mean + half, n)


def sign_flip_p(diffs: Sequence[float]) -> float:
    """Two-sided sign-flip (randomisation) p-value of mean(diffs) = 0, exact for n <= 16; it cannot go
    below 2/2ⁿ with n seeds, which is why it is printed beside the t-interval."""
    d = np.asarray(diffs, dtype=float)
    n = len(d)
    if n == 0:
        return math.nan
    if n <= 16:
        signs = np.array(np.meshgrid(*[[-1.0, 1.0]] * n, indexing="ij")).reshape(n, -1).T
    else:  # beyond 2^16 sign patterns: a fixed random sample of them (no longer exact)
        signs = np.random.default_rng(0).choice([-1.0, 1.0], size=(1 << 16, n))
    means = np.abs(signs @ d) / n
    obs = abs(d.mean())
    return float(np.mean(means >= obs - 1e-12 * max(1.0, obs)))


def rank_schedules(schedules: Sequence[ScheduleFrontier], level: float = 0.95) -> pd.DataFrame:
    """One row per schedule, ranked by mean prunable sparsity of the sparsest non-inferior ticket
    (descending), then mean MACs (ascending); each quantity with its t-interval over seeds (cut to
    [0, 1] for a sparsity, at 0 for a cost). A schedule
    with censored seeds has a mean that is a lower bound (`sparsity_lower_bound`)."""
    rows = []
    for s in schedules:
        row: dict[str, Any] = {"schedule": s.name, "seeds": len(s.seeds)}
        for col in ("sparsity", "global_sparsity", "macs", "storage"):
            mean, lo, hi, _ = t_interval(getattr(s, col), level)
            # a sparsity lies in [0, 1], a cost is >= 0: a t-interval over few seeds is cut there
            top = 1.0 if col.endswith("sparsity") else math.inf
            lo, hi = (max(0.0, lo), min(top, hi)) if math.isfinite(lo) else (lo, hi)
            row.update({f"{col}_mean": mean, f"{col}_low": lo, f"{col}_high": hi})
        row["censored"] = int(sum(s.censored))
        row["sparsity_lower_bound"] = bool(any(s.censored))
        row["provisional"] = s.provisional
        rows.append(row)
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    df = df.sort_values(["sparsity_mean", "macs_mean"], ascending=[False, True], kind="stable").reset_index(drop=True)
    df.insert(0, "rank", range(1, len(df) + 1))
    return df


LAYERWISE_FRONTIER_RULE = (
    "on the frontier, paired by seed: d = sparsity(layerwise) − sparsity(uniform) of each one's sparsest "
    "non-inferior ticket, and r = log MACs(layerwise) − log MACs(uniform) of those tickets; "
    "t-intervals over seeds (exact sign-flip p beside). Supported if d's interval lies above 0 "
    "(sparser) or r's lies below 0 (cheaper at non-inferior FID); contradicted if d's lies below 0; "
    "else inconclusive. A censored sparsity is a lower bound, so: support needs no seed where uniform "
    "is censored (its frontier could be sparser and cheaper still), contradiction needs no seed where "
    "layerwise is censored, and when both are censored in every seed the comparison is inconclusive "
    "(both hit the ceiling)")


@dataclass(frozen=True)
class ScheduleVerdict:
    """`outcome` is one of VERDICTS; `verdict` is the text to print (qualified when provisional)."""
    test: str
    reference: str
    outcome: str
    verdict: str
    reason: str
    n_paired: int
    sparsity_diff: float
    sparsity_diff_low: float
    sparsity_diff_high: float
    sparsity_sign_flip_p: float
    macs_ratio: float
    macs_ratio_low: float
    macs_ratio_high: float
    n_both_censored: int
    n_test_censored: int
    n_reference_censored: int
    provisional: bool
    sentence: str
    rule: str = field(default=LAYERWISE_FRONTIER_RULE)


def layerwise_verdict(schedules: Sequence[ScheduleFrontier], test: str = "layerwise", reference: str = "uniform",
                      level: float = 0.95, *, baseline_converged: Any = True) -> ScheduleVerdict:
    """The layerwise claim ("layerwise finds sparser, or cheaper, tickets at non-inferior FID") decided
    on the frontier; rule: LAYERWISE_FRONTIER_RULE."""
    by_name = {s.name: s for s in schedules}
    if test not in by_name or reference not in by_name:
        raise ValueError(f"need schedules {test!r} and {reference!r}, got {sorted(by_name)}")
    a, b = by_name[test], by_name[reference]
    provisional = (not _converged_flag(baseline_converged)) or a.provisional or b.provisional
    ia = {s: i for i, s in enumerate(a.seeds)}
    ib = {s: i for i, s in enumerate(b.seeds)}
    common = [s for s in a.seeds if s in ib]
    d = np.array([a.sparsity[ia[s]] - b.sparsity[ib[s]] for s in common], dtype=float)
    r = np.array([math.log(a.macs[ia[s]]) - math.log(b.macs[ib[s]]) for s in common], dtype=float)
    ca = np.array([a.censored[ia[s]] for s in common], dtype=bool)
    cb = np.array([b.censored[ib[s]] for s in common], dtype=bool)
    n = len(common)
    dm, dlo, dhi, _ = t_interval(d, level)
    rm, rlo, rhi, _ = t_interval(r, level)
    p = sign_flip_p(d) if n else math.nan
    both, only_a, any_b = int(np.sum(ca & cb)), int(np.sum(ca)), int(np.sum(cb))

    def ok(x: float) -> bool:
        return math.isfinite(x)

    sparser = ok(dlo) and dlo > 0
    less_sparse = ok(dhi) and dhi < 0
    cheaper = ok(rhi) and rhi < 0
    if n < 2:
        outcome, reason = INCONCLUSIVE, f"{n} paired seed{'s' if n != 1 else ''}: no interval over seeds"
    elif both == n:
        ceil = max(max(a.ceiling), max(b.ceiling))
        outcome, reason = INCONCLUSIVE, (
            f"both hit the ceiling: in every seed both schedules' sparsest non-inferior ticket is the last round "
            f"studied (≥ {_pct(ceil)}, not bracketed), so neither can be shown sparser or cheaper; "
            f"study sparser rounds")
    elif (sparser or cheaper) and any_b == 0:
        how = []
        if sparser:
            how.append(f"{test} is sparser")
        if cheaper:
            how.append(f"{test} is cheaper in MACs")
        outcome, reason = SUPPORTED, " and ".join(how) + " at non-inferior FID"
    elif less_sparse and only_a == 0:
        outcome, reason = CONTRADICTED, f"{test}'s sparsest non-inferior ticket is less sparse than {reference}'s"
    else:
        bits = []
        if (sparser or cheaper) and any_b:
            bits.append(f"{reference} is censored at the last round in {any_b} of {n} seeds, so its frontier "
                        f"could be sparser and cheaper still")
        elif less_sparse and only_a:
            bits.append(f"{test} is censored at the last round in {only_a} of {n} seeds, so its frontier "
                        f"could be sparser still")
        else:
            if n and np.all(d == 0):
                bits.append("in every seed both schedules' sparsest non-inferior ticket is the same round (a tie at "
                            "the resolution of the rounds: the crossings may still differ inside the bracket)")
            else:
                bits.append("the sparsity difference's interval includes 0")
            if ok(rlo) and rlo > 0:
                bits.append(f"{test} needs more MACs at its sparsest non-inferior ticket (×{math.exp(rm):.2f}, "
                            f"interval above 1), so it is not cheaper either")
            elif not cheaper:
                bits.append("the MACs ratio's interval includes 1")
        outcome, reason = INCONCLUSIVE, "; ".join(bits)
    ratio = (math.exp(rm), math.exp(rlo) if ok(rlo) else math.nan, math.exp(rhi) if ok(rhi) else math.nan)
    pct_pts = f"{100 * dm:+.1f} pp" if ok(dm) else "n/a"
    ci = f" [{100 * dlo:+.1f}, {100 * dhi:+.1f}]" if ok(dlo) else ""
    mci = f" [{ratio[1]:.2f}, {ratio[2]:.2f}]" if ok(ratio[1]) else ""
    verdict = f"{outcome} ({PROVISIONAL})" if provisional else outcome
    sentence = (f"{test} vs {reference} on the frontier: {outcome}: {reason}; sparsity difference {pct_pts} "
                f"prunable{ci} ({int(round(100 * level))} % t-interval over {n} paired seeds, exact sign-flip "
                f"p = {p:.3g}); MACs ratio ×{ratio[0]:.2f}{mci}")
    return ScheduleVerdict(
        test=test, reference=reference, outcome=outcome, verdict=verdict, reason=reason, n_paired=n,
        sparsity_diff=dm, sparsity_diff_low=dlo, sparsity_diff_high=dhi, sparsity_sign_flip_p=p,
        macs_ratio=ratio[0], macs_ratio_low=ratio[1], macs_ratio_high=ratio[2],
        n_both_censored=both, n_test_censored=only_a, n_reference_censored=any_b,
        provisional=provisional, sentence=_qualify(sentence, provisional))
