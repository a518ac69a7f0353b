"""Budget stability of the primary claim (DESIGN §6, "a budget is a design choice to defend"): the
ticket-vs-dense non-inferiority verdict at the study's budget T (train.steps) and at factor x T, and
whether the two agree. It replaces a convergence rule the CPU study could never pass (held-out loss
still improving by > 1 % over the last quarter at every budget tried).

The effect is the ticket/dense FID ratio, per seed (each seed's ticket against its own dense net),
summarised on the log scale: the mean of the per-seed log ratios with a Student-t interval on n - 1
df, exponentiated. Non-inferior ("supported") when the interval's upper end is below 1 + margin,
"contradicted" when its lower end is beyond it, else inconclusive (pipeline.stats.verdicts decides).
Pure functions: the FIDs come from pipeline.report.budget_inputs.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Optional

from pipeline.stats.tdist import t_interval
from pipeline.stats.verdicts import CONTRADICTED, INCONCLUSIVE, SUPPORTED, beyond_margin, within_margin

NOT_MEASURED = "not measured"   # no 2T verdict: the check is off, or fewer than two seeds finished
STABLE, UNSTABLE = "stable", "unstable"

# per seed: {"dense": FID, "ticket": FID}
SeedFids = Mapping[int, Mapping[str, float]]


@dataclass(frozen=True)
class RatioInterval:
    """Geometric mean over seeds of the ticket/dense FID ratio, with its interval."""
    ratio: float
    low: float
    high: float
    n: int
    seeds: tuple[int, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"ratio": self.ratio, "low": self.low, "high": self.high, "n": self.n, "seeds": list(self.seeds)}


def _usable(f: Optional[Mapping[str, float]]) -> bool:
    return f is not None and all(
        isinstance(f.get(key), (int, float)) and math.isfinite(f[key]) and f[key] > 0 for key in ("dense", "ticket"))


def _exp(x: float) -> float:
    return math.exp(x) if math.isfinite(x) else math.nan


def log_interval(log_values: Mapping[int, float], level: float) -> RatioInterval:
    """exp of the t interval (n - 1 df) of the mean of per-seed log values; NaN ends below two seeds."""
    seeds = tuple(sorted(log_values))
    mean, low, high, n = t_interval([log_values[s] for s in seeds], level)
    return RatioInterval(_exp(mean), _exp(low), _exp(high), n, seeds)


def ratio_interval(fids: SeedFids, level: float = 0.95, seeds: Optional[set[int]] = None) -> RatioInterval:
    """The ticket/dense FID ratio over the seeds with both FIDs (restricted to `seeds` when given)."""
    logs = {s: math.log(f["ticket"]) - math.log(f["dense"]) for s, f in fids.items()
            if _usable(f) and (seeds is None or s in seeds)}
    return log_interval(logs, level)


def noninferiority(interval: RatioInterval, margin: float) -> str:
    """The verdict on "the ticket's FID is within (1 + margin) x its dense net's"."""
    bound = 1.0 + margin
    if within_margin(interval.high, bound):
        return SUPPORTED
    return CONTRADICTED if beyond_margin(interval.low, bound) else INCONCLUSIVE


def budget_evidence(verdict_T: str, verdict_2T: Optional[str], **context: Any) -> dict[str, Any]:
    """Whether the verdict at T is the verdict at 2T. `verdict_2T` None (or NOT_MEASURED): not
    measured, `stable` None. `context` (steps, factor, round, intervals, ...) is passed through."""
    measured = verdict_2T is not None and verdict_2T != NOT_MEASURED
    stable = (verdict_T == verdict_2T) if measured else None
    return {"verdict_T": verdict_T, "verdict_2T": verdict_2T if measured else NOT_MEASURED, "stable": stable,
            "status": NOT_MEASURED if not measured else STABLE if stable else UNSTABLE, **context}


def budget_stability(fids_T: SeedFids, fids_2T: Optional[SeedFids], margin: float, level: float = 0.95, *,
                     steps: Optional[int] = None, factor: Optional[int] = None, round: Optional[int] = None,
                     primary_round: Optional[int] = None) -> dict[str, Any]:
    """Both verdicts and the evidence dict (budget_evidence's keys plus the two ratio intervals).

    Both budgets are read over the same seeds, those with both FIDs at T and at 2T, so a change of
    verdict is the budget's and not a change of seeds; with fewer than two such seeds the 2T verdict
    is NOT_MEASURED and the T verdict uses every seed with its FIDs at T. `shift` is the geometric
    mean over seeds of ratio_2T / ratio_T with its interval (how far the longer budget moves the
    gap). `round_is_primary` says whether the re-trained round is the report's primary round."""
    both = {s for s, f in (fids_2T or {}).items() if _usable(f) and _usable(fids_T.get(s))}
    measured = len(both) >= 2
    interval_T = ratio_interval(fids_T, level, both if measured else None)
    interval_2T = ratio_interval(fids_2T, level, both) if measured else None
    shift = None
    if measured:
        def log_ratio(f: Mapping[str, float]) -> float:
            return math.log(f["ticket"]) - math.log(f["dense"])
        shift = log_interval({s: log_ratio(fids_2T[s]) - log_ratio(fids_T[s]) for s in both}, level).as_dict()
    return budget_evidence(
        noninferiority(interval_T, margin), noninferiority(interval_2T, margin) if measured else None,
        margin=margin, level=level, steps_T=steps, steps_2T=None if steps is None or factor is None else steps * factor,
        factor=factor, round=round, primary_round=primary_round,
        round_is_primary=None if round is None or primary_round is None else round == primary_round,
        interval_T=interval_T.as_dict(), interval_2T=interval_2T.as_dict() if interval_2T else None, shift=shift)
