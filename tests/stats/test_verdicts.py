"""The verdict rules (pipeline.stats.verdicts): each verdict flips when the interval moves past 0 or the
margin and stays put while it straddles it; non-inferiority has one boundary, strict."""
from __future__ import annotations

import math

import numpy as np
import pytest

from pipeline.stats import verdicts as V
from pipeline.stats.verdicts import CONTRADICTED, INCONCLUSIVE, SUPPORTED, superiority


@pytest.mark.parametrize("effect, expected", [(-0.3, CONTRADICTED), (-0.05, INCONCLUSIVE), (0.0, INCONCLUSIVE),
                                              (0.05, INCONCLUSIVE), (0.3, SUPPORTED)])
def test_superiority_flips_when_the_interval_clears_zero(effect, expected):
    ci = (effect - 0.1, effect + 0.1)
    assert superiority(ci, "positive") == expected
    flipped = {SUPPORTED: CONTRADICTED, CONTRADICTED: SUPPORTED, INCONCLUSIVE: INCONCLUSIVE}[expected]
    assert superiority(ci, "negative") == flipped
    assert V.side(ci) == {SUPPORTED: "more", CONTRADICTED: "less", INCONCLUSIVE: "inconclusive"}[expected]
    with pytest.raises(ValueError):
        superiority(ci, "up")


def test_no_interval_decides_nothing():
    for ci in (None, (math.nan, 1.0), (0.5, math.inf), (None, 1.0)):
        assert superiority(ci) == INCONCLUSIVE and V.side(ci) == "inconclusive"
    assert superiority((0.0, 0.1)) == INCONCLUSIVE  # touching 0 is not excluding it


def test_non_inferiority_has_one_strict_boundary():
    assert V.within_margin(1.999, 2.0)
    assert not V.within_margin(2.0, 2.0)  # an upper end at the margin is not within it
    assert not V.within_margin(math.nan, 2.0) and not V.within_margin(None, 2.0)
    assert V.beyond_margin(2.001, 2.0) and not V.beyond_margin(2.0, 2.0) and not V.beyond_margin(math.nan, 2.0)


def test_the_frontier_and_the_convergence_check_use_that_boundary():
    from pipeline.stats.convergence import dense_convergence
    from pipeline.stats.frontier import RoundInterval, sparsest_non_inferior

    at = sparsest_non_inferior([RoundInterval(1, 0.5, 0.4, 0.0, 1.0), RoundInterval(2, 0.75, 0.6, 0.0, 2.0)], 2.0)
    assert at.round == 1 and at.stopped_at == 2  # upper end == margin fails
    final = np.ones(3)  # every item improves by exactly d: the upper bound is d (no spread), in binary exactly
    assert not dense_convergence({1: final + 0.25, 2: final}, tolerance=0.25).converged  # bound == tolerance
    assert dense_convergence({1: final + 0.125, 2: final}, tolerance=0.25).converged


@pytest.mark.parametrize("uppers, expected", [
    ([1.0, 1.5, 1.9], (2, None, ())),
    ([1.0, 2.5, 1.0], (0, 1, (2,))),       # a pass after the stop does not count
    ([3.0, 1.0], (None, 0, (1,))),
    ([1.0, math.nan, 1.0], (0, 1, (2,))),  # no interval fails
])
def test_fixed_sequence_stops_at_the_first_failure(uppers, expected):
    assert V.fixed_sequence(uppers, 2.0) == expected


def test_sequence_verdict():
    assert V.sequence_verdict(True, 5.0, 2.0) == SUPPORTED
    assert V.sequence_verdict(False, 2.5, 2.0) == CONTRADICTED
    assert V.sequence_verdict(False, 2.0, 2.0) == INCONCLUSIVE  # lower end at the margin is not beyond it
    assert V.sequence_verdict(False, math.nan, 2.0) == INCONCLUSIVE


@pytest.mark.parametrize("args, expected", [
    ((1, True, False, False, 0, 0, 0), (INCONCLUSIVE, V.FEW_SEEDS)),
    ((3, True, False, False, 3, 3, 3), (INCONCLUSIVE, V.CEILING)),
    ((3, True, False, False, 0, 2, 0), (SUPPORTED, V.BETTER)),
    ((3, False, True, False, 0, 0, 0), (SUPPORTED, V.BETTER)),
    ((3, True, False, False, 0, 0, 1), (INCONCLUSIVE, V.REFERENCE_CENSORED)),
    ((3, False, False, True, 0, 0, 2), (CONTRADICTED, V.WORSE)),
    ((3, False, False, True, 0, 1, 0), (INCONCLUSIVE, V.TEST_CENSORED)),
    ((3, False, False, False, 0, 0, 0), (INCONCLUSIVE, V.OPEN)),
])
def test_layerwise_rule_respects_censoring(args, expected):
    assert V.layerwise(*args) == expected
