"""Where a verdict is decided: the verdict words and every decision rule of the study, from an effect's
interval (pure functions, no text beyond the verdict words; the sentences are in pipeline/report/text.py).

Every verdict is one of SUPPORTED / CONTRADICTED / INCONCLUSIVE ("at this scale": a verdict says what
these runs can resolve, not what is true). An interval that contains the margin or 0 is inconclusive:
it is never read as "no more than" or "no difference". An interval with a non-finite end decides
nothing.

- superiority / side: the interval excludes 0 on the predicted side (claims about a sign).
- within_margin: THE non-inferiority boundary, the upper end strictly below the margin; the
  fixed-sequence frontier, the ticket-vs-dense claim and the dense convergence check all use it.
- fixed_sequence: rounds in increasing sparsity, stop at the first failure (pipeline.stats.frontier).
- layerwise: the layerwise-vs-uniform comparison on the frontier, with censored seeds.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

SUPPORTED, CONTRADICTED, INCONCLUSIVE = "supported", "contradicted", "inconclusive at this scale"
VERDICTS = (SUPPORTED, CONTRADICTED, INCONCLUSIVE)
# superiority's verdicts as the side of 0 the interval lies on (similarity claims say "more" / "less")
SIDES = {SUPPORTED: "more", CONTRADICTED: "less", INCONCLUSIVE: "inconclusive"}


def finite(x) -> bool:
    return x is not None and isinstance(x, (int, float)) and math.isfinite(x)


def superiority(ci: Optional[Sequence[float]], direction: str = "positive") -> str:
    """The claim predicts effect > 0 ('positive') or < 0 ('negative'): supported when the interval
    excludes 0 on the predicted side, contradicted when it excludes 0 on the other side."""
    if direction not in ("positive", "negative"):
        raise ValueError(f"direction must be 'positive' or 'negative', got {direction!r}")
    if ci is None:
        return INCONCLUSIVE
    lo, hi = ci
    if not (finite(lo) and finite(hi)):
        return INCONCLUSIVE
    if direction == "negative":
        lo, hi = -hi, -lo
    if lo > 0:
        return SUPPORTED
    if hi < 0:
        return CONTRADICTED
    return INCONCLUSIVE


def side(ci: Optional[Sequence[float]]) -> str:
    """'more' / 'less' when the interval excludes 0 on that side, 'inconclusive' when it contains 0
    or there is none."""
    return SIDES[superiority(ci)]


def within_margin(upper: Optional[float], margin: float) -> bool:
    """Non-inferiority (lower is better): the interval's upper end lies strictly below the margin. An
    upper end exactly at the margin is not within it; no (finite) upper end shows nothing."""
    return upper is not None and math.isfinite(float(upper)) and float(upper) < margin


def beyond_margin(lower: Optional[float], margin: float) -> bool:
    """Inferiority shown: the interval's lower end lies strictly above the margin."""
    return lower is not None and math.isfinite(float(lower)) and float(lower) > margin


def fixed_sequence(uppers: Sequence[Optional[float]], margin: float) -> tuple[Optional[int], Optional[int], tuple[int, ...]]:
    """Rounds' upper ends in increasing sparsity, tested in that order until the first failure:
    (index of the last pass before it or None, index of the first failure or None, indices that pass
    after the failure and therefore do not count)."""
    last_pass = fail = None
    for i, u in enumerate(uppers):
        if within_margin(u, margin):
            last_pass = i
        else:
            fail = i
            break
    ignored = () if fail is None else tuple(i for i in range(fail + 1, len(uppers)) if within_margin(uppers[i], margin))
    return last_pass, fail, ignored


def sequence_verdict(passed: bool, lower: Optional[float], margin: float) -> str:
    """A round read inside a fixed sequence: supported if the sequence passes through it, contradicted if
    its own interval lies wholly beyond the margin, else inconclusive."""
    if passed:
        return SUPPORTED
    return CONTRADICTED if beyond_margin(lower, margin) else INCONCLUSIVE


# why layerwise() decided what it did; pipeline/report/text.py words each
FEW_SEEDS, CEILING, BETTER, WORSE, REFERENCE_CENSORED, TEST_CENSORED, OPEN = (
    "few seeds", "ceiling", "better", "worse", "reference censored", "test censored", "open")


def layerwise(n: int, sparser: bool, cheaper: bool, less_sparse: bool, n_both_censored: int,
              n_test_censored: int, n_reference_censored: int) -> tuple[str, str]:
    """(verdict, why) of "the test schedule finds sparser, or cheaper, tickets at non-inferior FID"
    from its paired intervals over n seeds. A censored sparsity is a lower bound: support needs no
    seed where the reference is censored, contradiction none where the test is, and both censored in
    every seed is inconclusive (both hit the ceiling)."""
    if n < 2:
        return INCONCLUSIVE, FEW_SEEDS
    if n_both_censored == n:
        return INCONCLUSIVE, CEILING
    if (sparser or cheaper) and n_reference_censored == 0:
        return SUPPORTED, BETTER
    if less_sparse and n_test_censored == 0:
        return CONTRADICTED, WORSE
    if (sparser or cheaper) and n_reference_censored:
        return INCONCLUSIVE, REFERENCE_CENSORED
    if less_sparse and n_test_censored:
        return INCONCLUSIVE, TEST_CENSORED
    return INCONCLUSIVE, OPEN
