"""The fixed-sequence sparsest non-inferior ticket and its margins table (numbers from pipeline.stats.frontier,
words from pipeline.report.text)."""
import math

import numpy as np
import pytest

from pipeline.report import text as T
from pipeline.report.text import PROVISIONAL
from pipeline.stats.frontier import (BRACKETED, CENSORED, NONE, RoundInterval, frontier_over_seeds, margins_table,
                                     relative_margin, sparsest_non_inferior)

SPARSITY = [1 - 0.45 ** k for k in range(1, 7)]  # 6 rounds at rate 0.55: 55 % … 99.2 %


def rounds(uppers, sparsity=SPARSITY):
    """Rounds 1..K with the given interval upper ends (estimate 1 below; global 1 pp below prunable)."""
    return [RoundInterval(k, s, s - 0.01, u - 1.0, u) for k, (s, u) in enumerate(zip(sparsity, uppers), start=1)]


MARGIN = relative_margin(0.10, 15.0)  # 1.5 FID


# -- the rule ------------------------------------------------------------------------------------
def test_a_round_that_passes_after_a_failure_does_not_count():
    f = sparsest_non_inferior(rounds([0.1, 0.5, 2.0, 1.0, 0.2]), MARGIN)
    assert f.round == 2 and f.prunable_sparsity == pytest.approx(SPARSITY[1])
    assert f.stopped_at == 3
    assert f.status == BRACKETED
    assert f.ignored_after_stop == (4, 5)
    assert "rounds 4, 5 pass after the stop and do not count" in T.frontier_sentence(f)


def test_the_upper_end_must_lie_strictly_below_the_margin():
    f = sparsest_non_inferior(rounds([0.1, 1.5, 0.1]), MARGIN)
    assert f.round == 1 and f.stopped_at == 2


def test_a_round_without_an_interval_fails():
    f = sparsest_non_inferior(rounds([0.1, math.nan, 0.1]), MARGIN)
    assert f.round == 1 and f.stopped_at == 2 and f.crossing is None
    assert "no interval" in T.frontier_sentence(f)


def test_every_round_passing_is_censored_and_says_so():
    f = sparsest_non_inferior(rounds([0.1, 0.2, 0.3, 0.5, 0.9, 1.4]), MARGIN)
    assert f.status == CENSORED and f.censored and not f.bracketed
    assert f.round == 6 and f.stopped_at is None and f.bracket is None and f.crossing is None
    assert "≥ 99.2 % (last round studied, not bracketed)" in T.frontier_sentence(f)
    assert "≥" in T.frontier_sentence(f) and "not bracketed" in T.frontier_sentence(f)


def test_a_bracketed_result_gives_the_bracket_and_an_interpolated_crossing():
    f = sparsest_non_inferior(rounds([0.1, 0.5, 1.0, 2.0, 3.0, 4.0]), MARGIN)
    assert f.status == BRACKETED and f.round == 3 and f.stopped_at == 4
    assert f.bracket == pytest.approx((SPARSITY[2], SPARSITY[3]))
    assert f.global_bracket == pytest.approx((SPARSITY[2] - 0.01, SPARSITY[3] - 0.01))
    assert "between 90.9 % and 95.9 % prunable" in T.frontier_sentence(f)
    assert "interpolated" in T.frontier_sentence(f) and "not bracketed" not in T.frontier_sentence(f)
    # 1.5 is halfway between the upper ends 1.0 and 2.0: halfway in log(remaining) = geometric mean
    assert f.crossing == pytest.approx(1 - math.sqrt((1 - SPARSITY[2]) * (1 - SPARSITY[3])))
    assert f.bracket[0] < f.crossing < f.bracket[1]


def test_no_round_is_non_inferior_when_round_1_fails():
    f = sparsest_non_inferior(rounds([2.0, 0.1, 0.1]), MARGIN)
    assert f.status == NONE and f.round is None and f.stopped_at == 1
    assert f.sparsity_or_dense == 0.0 and f.round_or_dense == 0
    assert T.frontier_sentence(f).startswith("no round is non-inferior")
    assert f.ignored_after_stop == (2, 3)


def test_rounds_out_of_order_are_refused():
    with pytest.raises(ValueError):
        sparsest_non_inferior(rounds([0.1, 0.2], sparsity=[0.9, 0.5]), MARGIN)


# -- the margin ----------------------------------------------------------------------------------
def test_relative_margin_scales_with_dense_fid():
    assert relative_margin(0.10, 14.4).absolute == pytest.approx(1.44)
    assert relative_margin(0.10, 28.8).absolute == pytest.approx(2.88)
    assert "10 % of dense FID 14.40" in T.frontier_sentence(sparsest_non_inferior(rounds([0.1]), relative_margin(0.10, 14.4)))
    # the same ticket is non-inferior against a worse baseline, not against a better one
    rs = rounds([0.1, 2.0])
    assert sparsest_non_inferior(rs, relative_margin(0.10, 30.0)).round == 2
    assert sparsest_non_inferior(rs, relative_margin(0.10, 15.0)).round == 1
    with pytest.raises(ValueError):
        relative_margin(0.1, 0.0)


def test_margins_table_rows_and_monotone():
    t = margins_table(rounds([0.1, 0.5, 1.0, 2.0, 3.0, 4.0]), 15.0, (0.20, 0.05, 0.10))
    assert list(t["margin_fraction"]) == [0.05, 0.10, 0.20]
    assert list(t["margin"]) == pytest.approx([0.75, 1.5, 3.0])
    assert list(t["round"]) == [2, 3, 4]  # 3.0 is not < 3.0: round 5 fails at 20 %
    assert list(t["status"]) == [BRACKETED] * 3


def test_margins_table_never_gives_a_less_sparse_ticket_at_a_larger_margin():
    rng = np.random.default_rng(0)
    fractions = np.linspace(0.01, 0.5, 25)
    for _ in range(200):
        t = margins_table(rounds(rng.uniform(0, 8, 6)), 15.0, fractions)
        assert np.all(np.diff(t["prunable_sparsity"].to_numpy()) >= 0)
        assert np.all(np.diff(t["round"].to_numpy()) >= 0)


def test_margins_table_carries_per_seed_summaries():
    per = {1: rounds([0.1, 0.5, 2.0]), 2: rounds([0.1, 0.2, 0.3])}
    t = margins_table(rounds([0.1, 0.4, 1.0]), 15.0, (0.1,), per_seed=per, per_seed_dense_fid={1: 15.0, 2: 15.0})
    row = t.iloc[0]
    assert row["seeds"] == 2 and row["seeds_censored"] == 1
    assert row["seeds_sparsity_min"] == pytest.approx(SPARSITY[1])
    assert row["seeds_sparsity_max"] == pytest.approx(SPARSITY[2])


# -- provisional ---------------------------------------------------------------------------------
class _NotConverged:
    converged = False


@pytest.mark.parametrize("uppers", [[0.1, 0.2], [0.1, 2.0], [2.0, 0.1]])
def test_a_baseline_that_has_not_converged_qualifies_every_sentence(uppers):
    for flag in (False, _NotConverged()):
        f = sparsest_non_inferior(rounds(uppers), MARGIN, baseline_converged=flag)
        assert f.provisional and T.frontier_sentence(f).startswith(PROVISIONAL)
    assert not sparsest_non_inferior(rounds(uppers), MARGIN).provisional
    assert PROVISIONAL not in T.frontier_sentence(sparsest_non_inferior(rounds(uppers), MARGIN))
    t = margins_table(rounds(uppers), 15.0, baseline_converged=False)
    assert t["provisional"].all()
    sf = frontier_over_seeds({1: rounds(uppers)}, rounds(uppers), 0.1, {1: 15.0}, baseline_converged=False)
    assert T.seeds_frontier_sentence(sf).startswith(PROVISIONAL) and T.seeds_frontier_sentence(sf).count(PROVISIONAL) == 1
    assert all(f.provisional and T.frontier_sentence(f).startswith(PROVISIONAL) for _, f in sf.per_seed)
    assert sf.over_seeds.provisional


# -- per seed and over seeds ---------------------------------------------------------------------
def test_over_seeds_applies_the_rule_per_seed_and_to_the_mean():
    per = {1: rounds([0.1, 0.5, 2.0, 0.1]), 2: rounds([0.1, 0.2, 0.3, 0.4]), 3: rounds([3.0, 0.1, 0.1, 0.1])}
    sf = frontier_over_seeds(per, rounds([0.5, 0.5, 1.0, 1.2]), 0.10, {1: 15.0, 2: 15.0, 3: 15.0})
    assert sf.seed(1).round == 2 and sf.seed(1).ignored_after_stop == (4,)
    assert sf.seed(2).censored and sf.seed(3).status == NONE
    assert sf.over_seeds.censored
    assert (sf.n_seeds, sf.n_censored, sf.n_bracketed, sf.n_none) == (3, 1, 1, 1)
    assert sf.sparsity_min == 0.0
    assert sf.sparsity_median == pytest.approx(SPARSITY[1])
    assert sf.sparsity_max == pytest.approx(SPARSITY[3])
    assert "1 of 3 censored" in T.seeds_frontier_sentence(sf) and "not bracketed" in T.seeds_frontier_sentence(sf)


def test_each_seed_gets_its_own_relative_margin():
    per = {1: rounds([1.0]), 2: rounds([1.0])}
    sf = frontier_over_seeds(per, None, 0.10, {1: 5.0, 2: 20.0})
    assert sf.seed(1).status == NONE and sf.seed(2).censored
    assert sf.seed(2).margin == pytest.approx(2.0)


