"""Is the dense baseline converged? A paired, equivalence-style check on the held-out denoising loss
(numbers and a status; pipeline/report/text.py words them).

Input: the dense run's held-out denoising loss per item at a few training steps (e.g. 50 %, 75 % and
100 % of the steps), on the SAME items with the same noise and timesteps (common random numbers), so
the loss at two checkpoints is paired item by item.

Rule: over the last part of training (the checkpoint before the final one, or `since`, to the final
one) the per-item improvement is d_i = loss_since_i − loss_final_i. Its mean has the one-sided upper
bound U = d̄ + t(level, n − 1)·s_d/√n. The baseline is "converged" when U < tolerance × mean final loss:
the data show that training is no longer improving the held-out loss by more than the tolerance.
Otherwise it is "not converged", and the measured improvement and its interval are reported.

Why this test and not "the change is not significantly different from 0": that test rewards noise (few
or noisy items give a wide interval that contains 0, and the run reads as converged). Here the burden
is the other way round, as in an equivalence test: the whole upper bound must sit below the tolerance,
so a converged verdict needs both that the change is within noise AND that noise is small enough to
show it is within the tolerance. The reported interval is the two-sided (2·level − 1) interval whose
upper end is U (the TOST convention: 90 % two-sided for a 95 % one-sided bound). A loss that rises
over the last part (interval below 0) is not still improving, so it passes; the sentence says it rose.
The threshold uses the observed mean final loss; its own sampling error is ignored (it scales a
tolerance, it is not the quantity tested).

Over seeds: converged only if every seed is. Each seed's tickets are compared with that seed's own
dense run (ticket-vs-dense is paired per seed), so each of those comparisons needs its own converged
baseline; a mean over seeds could hide a seed that is still learning.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Hashable, Mapping, Optional, Sequence, Union

import numpy as np

from pipeline.stats.tdist import quantile
from pipeline.stats.verdicts import within_margin

CONVERGED, NOT_CONVERGED = "converged", "not converged"

Checkpoints = Union[Mapping[int, Sequence[float]], Sequence[tuple[int, Sequence[float]]]]


@dataclass(frozen=True)
class Convergence:
    """One dense run. Improvements are in loss units; `relative_*` divide by the mean final loss."""
    converged: bool
    step_from: int
    step_to: int
    n_items: int
    final_loss: float
    improvement: float
    low: float
    high: float
    relative_improvement: float
    relative_high: float
    tolerance: float
    level: float
    curve: tuple[tuple[int, float, float], ...]

    @property
    def status(self) -> str:
        return CONVERGED if self.converged else NOT_CONVERGED


def _checkpoints(checkpoints: Checkpoints) -> list[tuple[int, np.ndarray]]:
    items = list(checkpoints.items()) if isinstance(checkpoints, Mapping) else list(checkpoints)
    cps = sorted(((int(s), np.asarray(v, dtype=float)) for s, v in items), key=lambda c: c[0])
    if len(cps) < 2:
        raise ValueError("the convergence check needs the held-out loss at two or more training steps")
    steps = [s for s, _ in cps]
    if len(set(steps)) != len(steps):
        raise ValueError(f"repeated training steps: {steps}")
    n = cps[0][1].shape
    for s, v in cps:
        if v.ndim != 1 or v.shape != n:
            raise ValueError(f"step {s}: per-item losses must be 1-D and on the same items "
                             f"(got shape {v.shape}, expected {n})")
        if not np.all(np.isfinite(v)):
            raise ValueError(f"step {s}: non-finite loss")
    if n[0] < 2:
        raise ValueError("the convergence check needs two or more held-out items")
    return cps


def dense_convergence(checkpoints: Checkpoints, tolerance: float = 0.01, *, since: Optional[int] = None,
                      level: float = 0.95) -> Convergence:
    """Decide convergence of one dense run from its per-item held-out losses at several steps.
    `since` picks the earlier checkpoint (default: the one before the final step)."""
    if not (math.isfinite(tolerance) and tolerance > 0):
        raise ValueError(f"tolerance must be a positive fraction, got {tolerance!r}")
    if not (0.5 < level < 1):
        raise ValueError(f"level must be in (0.5, 1), got {level!r}")
    cps = _checkpoints(checkpoints)
    step_to, final = cps[-1]
    if since is None:
        step_from, early = cps[-2]
    else:
        found = [v for s, v in cps[:-1] if s == since]
        if not found:
            raise ValueError(f"no checkpoint at step {since} before the final step {step_to}")
        step_from, early = since, found[0]
    d = early - final
    n = len(d)
    mean = float(d.mean())
    se = float(d.std(ddof=1) / math.sqrt(n))
    q = quantile(level, n - 1, two_sided=False)
    low, high = mean - q * se, mean + q * se
    final_mean = float(final.mean())
    if final_mean <= 0:
        raise ValueError("mean final loss must be positive for a relative tolerance")
    converged = within_margin(high, tolerance * final_mean)  # the non-inferiority boundary
    rel, rel_hi = mean / final_mean, high / final_mean
    curve = tuple((s, float(v.mean()), float(v.std(ddof=1) / math.sqrt(n))) for s, v in cps)
    return Convergence(converged=converged, step_from=step_from, step_to=step_to, n_items=n,
                       final_loss=final_mean, improvement=mean, low=low, high=high,
                       relative_improvement=rel, relative_high=rel_hi, tolerance=float(tolerance),
                       level=float(level), curve=curve)


@dataclass(frozen=True)
class SeedsConvergence:
    """Converged only if every seed's dense run is (module docstring)."""
    converged: bool
    per_seed: tuple[tuple[Hashable, Convergence], ...]
    n_seeds: int
    n_converged: int

    @property
    def status(self) -> str:
        return CONVERGED if self.converged else NOT_CONVERGED

    def seed(self, s: Hashable) -> Convergence:
        for k, c in self.per_seed:
            if k == s:
                return c
        raise KeyError(s)


def dense_convergence_over_seeds(per_seed: Mapping[Hashable, Checkpoints], tolerance: float = 0.01, *,
                                 since: Optional[int] = None, level: float = 0.95) -> SeedsConvergence:
    """`dense_convergence` for each seed; converged only if every seed is."""
    if not per_seed:
        raise ValueError("no seeds")
    results = tuple((s, dense_convergence(c, tolerance, since=since, level=level)) for s, c in per_seed.items())
    n = len(results)
    good = sum(c.converged for _, c in results)
    return SeedsConvergence(converged=good == n, per_seed=results, n_seeds=n, n_converged=good)
