"""Across schedules: each schedule's sparsest non-inferior ticket per seed (pipeline.stats.frontier)
with its cost, the ranking of schedules, and the layerwise-vs-uniform verdict on the frontier (decided by
pipeline.stats.verdicts.layerwise; worded by pipeline/report/text.py). Numbers and statuses only.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Hashable, Mapping, Sequence, Union

import numpy as np
import pandas as pd

from pipeline.stats.exact import sign_flip_test
from pipeline.stats.frontier import Frontier, SeedsFrontier, converged_flag
from pipeline.stats.tdist import cut, t_interval
from pipeline.stats.verdicts import layerwise


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
            lo, hi = cut(lo, hi, 0.0, 1.0 if col.endswith("sparsity") else math.inf)
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


@dataclass(frozen=True)
class ScheduleVerdict:
    """`outcome` is one of VERDICTS and `why` one of verdicts' reasons (FEW_SEEDS, CEILING, ...); the
    flags are the interval facts it was decided from. pipeline/report/text.py words it."""
    test: str
    reference: str
    outcome: str
    why: str
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
    sparser: bool
    cheaper: bool
    costlier: bool         # the MACs ratio's interval lies above 1
    tie: bool              # every seed's sparsest non-inferior tickets are the same round
    ceiling: float         # the sparsest last round studied, for a comparison where both are censored
    level: float
    provisional: bool


def layerwise_verdict(schedules: Sequence[ScheduleFrontier], test: str = "layerwise", reference: str = "uniform",
                      level: float = 0.95, *, baseline_converged: Any = True) -> ScheduleVerdict:
    """The layerwise claim ("layerwise finds sparser, or cheaper, tickets at non-inferior FID") on the
    frontier, paired by seed: d = sparsity(test) − sparsity(reference) and r = log MACs(test) − log
    MACs(reference) of each one's sparsest non-inferior ticket, t-intervals over seeds with the exact
    sign-flip p beside; the verdict is pipeline.stats.verdicts.layerwise."""
    by_name = {s.name: s for s in schedules}
    if test not in by_name or reference not in by_name:
        raise ValueError(f"need schedules {test!r} and {reference!r}, got {sorted(by_name)}")
    a, b = by_name[test], by_name[reference]
    provisional = (not converged_flag(baseline_converged)) or a.provisional or b.provisional
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
    p = sign_flip_test(d).p if n else math.nan
    both, only_a, any_b = int(np.sum(ca & cb)), int(np.sum(ca)), int(np.sum(cb))
    ok = math.isfinite
    sparser, less_sparse, cheaper = ok(dlo) and dlo > 0, ok(dhi) and dhi < 0, ok(rhi) and rhi < 0
    outcome, why = layerwise(n, sparser, cheaper, less_sparse, both, only_a, any_b)
    return ScheduleVerdict(
        test=test, reference=reference, outcome=outcome, why=why, n_paired=n,
        sparsity_diff=dm, sparsity_diff_low=dlo, sparsity_diff_high=dhi, sparsity_sign_flip_p=p,
        macs_ratio=math.exp(rm), macs_ratio_low=math.exp(rlo) if ok(rlo) else math.nan,
        macs_ratio_high=math.exp(rhi) if ok(rhi) else math.nan,
        n_both_censored=both, n_test_censored=only_a, n_reference_censored=any_b,
        sparser=sparser, cheaper=cheaper, costlier=ok(rlo) and rlo > 0, tie=bool(n and np.all(d == 0)),
        ceiling=max(max(a.ceiling), max(b.ceiling)) if n else math.nan, level=level, provisional=provisional)
