"""Budget stability: the ticket-vs-dense verdict at T and at 2T from per-seed FIDs, on the log-ratio
scale with a t interval on n - 1 df, and whether the two verdicts agree."""
import math

import numpy as np
import pytest
from scipy import stats

from pipeline.stats.budget import (NOT_MEASURED, STABLE, UNSTABLE, budget_evidence, budget_stability,
                                   noninferiority, ratio_interval)
from pipeline.stats.verdicts import CONTRADICTED, INCONCLUSIVE, SUPPORTED

MARGIN = 0.1


def fids(ratios, dense=(20.0, 25.0, 30.0)):
    """Per seed 1, 2, ...: a dense FID and the ticket's at `ratio` x it."""
    return {s: {"dense": d, "ticket": d * r} for s, (d, r) in enumerate(zip(dense, ratios), start=1)}


def test_interval_is_the_exponentiated_t_interval_of_the_log_ratios():
    data = fids([1.02, 0.97, 1.05])
    logs = np.log([1.02, 0.97, 1.05])
    q = stats.t.ppf(0.975, df=2)
    half = q * logs.std(ddof=1) / math.sqrt(3)
    got = ratio_interval(data, 0.95)
    assert got.n == 3 and got.seeds == (1, 2, 3)
    assert got.ratio == pytest.approx(math.exp(logs.mean()))  # a geometric mean, not the mean ratio
    assert (got.low, got.high) == pytest.approx((math.exp(logs.mean() - half), math.exp(logs.mean() + half)))
    # the ratio is per seed: scaling one seed's FIDs together changes nothing
    scaled = {**data, 2: {"dense": 200.0, "ticket": 200.0 * 0.97}}
    again = ratio_interval(scaled, 0.95)
    assert (again.ratio, again.low, again.high) == pytest.approx((got.ratio, got.low, got.high))


@pytest.mark.parametrize("ratios, verdict", [
    ([1.00, 1.01, 0.99], SUPPORTED),        # tight around 1: upper end well below 1.1
    ([1.50, 1.52, 1.48], CONTRADICTED),     # tight around 1.5: lower end beyond 1.1
    ([0.80, 1.40, 1.05], INCONCLUSIVE),     # wide: the interval straddles 1.1
])
def test_verdict_words(ratios, verdict):
    assert noninferiority(ratio_interval(fids(ratios)), MARGIN) == verdict
    assert verdict in ("supported", "contradicted") or verdict.startswith("inconclusive")


def test_an_upper_end_exactly_at_the_margin_is_not_non_inferior():
    at = ratio_interval({1: {"dense": 1.0, "ticket": 1.1}, 2: {"dense": 2.0, "ticket": 2.2}})
    assert at.high == pytest.approx(1.1) and noninferiority(at, MARGIN) != SUPPORTED


def test_one_seed_gives_no_interval_and_decides_nothing():
    one = ratio_interval(fids([1.0]))
    assert one.n == 1 and math.isnan(one.high)
    assert noninferiority(one, MARGIN) == INCONCLUSIVE


def test_same_verdict_at_both_budgets_is_stable():
    ev = budget_stability(fids([1.00, 1.01, 0.99]), fids([1.02, 1.00, 1.01]), MARGIN, steps=1200, factor=2,
                          round=2, primary_round=2)
    assert (ev["verdict_T"], ev["verdict_2T"], ev["stable"], ev["status"]) == (SUPPORTED, SUPPORTED, True, STABLE)
    assert (ev["steps_T"], ev["steps_2T"], ev["round_is_primary"]) == (1200, 2400, True)
    assert ev["interval_T"]["n"] == ev["interval_2T"]["n"] == 3


def test_a_verdict_that_moves_with_the_budget_is_unstable():
    # non-inferior at T, clearly worse once both nets train twice as long
    ev = budget_stability(fids([1.00, 1.01, 0.99]), fids([1.50, 1.52, 1.48]), MARGIN)
    assert (ev["verdict_T"], ev["verdict_2T"], ev["stable"], ev["status"]) == (SUPPORTED, CONTRADICTED, False, UNSTABLE)
    assert ev["shift"]["low"] > 1.3, "the gap grew by about 1.5x, and the shift says so"


def test_both_budgets_are_read_over_the_same_seeds():
    # seed 3 is far off at T but has no 2T run: it must not decide the T verdict the 2T one is compared with
    at_T = fids([1.00, 1.01, 3.0])
    at_2T = {1: {"dense": 20.0, "ticket": 20.0}, 2: {"dense": 25.0, "ticket": 25.5}}
    ev = budget_stability(at_T, at_2T, MARGIN)
    assert ev["interval_T"]["seeds"] == ev["interval_2T"]["seeds"] == [1, 2]
    assert ev["interval_T"]["high"] < 3.0


@pytest.mark.parametrize("at_2T", [None, {}, {1: {"dense": 20.0, "ticket": 20.0}},
                                   {1: {"dense": 20.0, "ticket": math.nan}, 2: {"dense": 25.0, "ticket": 25.0}}])
def test_without_two_seeds_at_2T_the_budget_is_not_measured(at_2T):
    ev = budget_stability(fids([1.00, 1.01, 0.99]), at_2T, MARGIN)
    assert ev["verdict_T"] == SUPPORTED and ev["interval_T"]["n"] == 3  # every seed at T still counts
    assert (ev["verdict_2T"], ev["stable"], ev["status"], ev["interval_2T"]) == (NOT_MEASURED, None, NOT_MEASURED, None)


def test_budget_evidence_from_verdict_words():
    assert budget_evidence(SUPPORTED, SUPPORTED)["stable"] is True
    assert budget_evidence(SUPPORTED, INCONCLUSIVE)["status"] == UNSTABLE
    missing = budget_evidence(INCONCLUSIVE, None, round=2)
    assert (missing["verdict_2T"], missing["stable"], missing["round"]) == (NOT_MEASURED, None, 2)
    assert budget_evidence(SUPPORTED, NOT_MEASURED)["stable"] is None


def test_a_budget_round_other_than_the_primary_round_is_flagged():
    ev = budget_stability(fids([1.0, 1.0, 1.0]), fids([1.0, 1.01, 0.99]), MARGIN, round=3, primary_round=2)
    assert ev["round_is_primary"] is False
