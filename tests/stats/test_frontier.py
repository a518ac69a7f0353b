"""The fixed-sequence sparsest non-inferior ticket, its margins table and the layerwise verdict."""
import math

import numpy as np
import pytest

from pipeline.stats.frontier import (BRACKETED, CENSORED, CONTRADICTED, INCONCLUSIVE, NONE, PROVISIONAL,
                                     SUPPORTED, RoundInterval, ScheduleFrontier, frontier_over_seeds,
                                     layerwise_verdict, margins_table, rank_schedules, relative_margin,
                                     sign_flip_p, sparsest_non_inferior, t_interval)

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
    assert "rounds 4, 5 pass after the stop and do not count" in f.sentence


def test_the_upper_end_must_lie_strictly_below_the_margin():
    f = sparsest_non_inferior(rounds([0.1, 1.5, 0.1]), MARGIN)
    assert f.round == 1 and f.stopped_at == 2


def test_a_round_without_an_interval_fails():
    f = sparsest_non_inferior(rounds([0.1, math.nan, 0.1]), MARGIN)
    assert f.round == 1 and f.stopped_at == 2 and f.crossing is None
    assert "no interval" in f.sentence


def test_every_round_passing_is_censored_and_says_so():
    f = sparsest_non_inferior(rounds([0.1, 0.2, 0.3, 0.5, 0.9, 1.4]), MARGIN)
    assert f.status == CENSORED and f.censored and not f.bracketed
    assert f.round == 6 and f.stopped_at is None and f.bracket is None and f.crossing is None
    assert "≥ 99.2 % (last round studied, not bracketed)" in f.sentence
    assert "≥" in f.sentence and "not bracketed" in f.sentence


def test_a_bracketed_result_gives_the_bracket_and_an_interpolated_crossing():
    f = sparsest_non_inferior(rounds([0.1, 0.5, 1.0, 2.0, 3.0, 4.0]), MARGIN)
    assert f.status == BRACKETED and f.round == 3 and f.stopped_at == 4
    assert f.bracket == pytest.approx((SPARSITY[2], SPARSITY[3]))
    assert f.global_bracket == pytest.approx((SPARSITY[2] - 0.01, SPARSITY[3] - 0.01))
    assert "between 90.9 % and 95.9 % prunable" in f.sentence
    assert "interpolated" in f.sentence and "not bracketed" not in f.sentence
    # 1.5 is halfway between the upper ends 1.0 and 2.0: halfway in log(remaining) = geometric mean
    assert f.crossing == pytest.approx(1 - math.sqrt((1 - SPARSITY[2]) * (1 - SPARSITY[3])))
    assert f.bracket[0] < f.crossing < f.bracket[1]


def test_no_round_is_non_inferior_when_round_1_fails():
    f = sparsest_non_inferior(rounds([2.0, 0.1, 0.1]), MARGIN)
    assert f.status == NONE and f.round is None and f.stopped_at == 1
    assert f.sparsity_or_dense == 0.0 and f.round_or_dense == 0
    assert f.sentence.startswith("no round is non-inferior")
    assert f.ignored_after_stop == (2, 3)


def test_rounds_out_of_order_are_refused():
    with pytest.raises(ValueError):
        sparsest_non_inferior(rounds([0.1, 0.2], sparsity=[0.9, 0.5]), MARGIN)


# -- the margin ----------------------------------------------------------------------------------
def test_relative_margin_scales_with_dense_fid():
    assert relative_margin(0.10, 14.4).absolute == pytest.approx(1.44)
    assert relative_margin(0.10, 28.8).absolute == pytest.approx(2.88)
    assert "10 % of dense FID 14.40" in relative_margin(0.10, 14.4).rule
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
        assert f.provisional and f.sentence.startswith(PROVISIONAL)
    assert not sparsest_non_inferior(rounds(uppers), MARGIN).provisional
    assert PROVISIONAL not in sparsest_non_inferior(rounds(uppers), MARGIN).sentence
    t = margins_table(rounds(uppers), 15.0, baseline_converged=False)
    assert t["provisional"].all() and t["sentence"].str.startswith(PROVISIONAL).all()
    sf = frontier_over_seeds({1: rounds(uppers)}, rounds(uppers), 0.1, {1: 15.0}, baseline_converged=False)
    assert sf.sentence.startswith(PROVISIONAL) and sf.sentence.count(PROVISIONAL) == 1
    assert all(f.provisional and f.sentence.startswith(PROVISIONAL) for _, f in sf.per_seed)
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
    assert "1 of 3 censored" in sf.sentence and "not bracketed" in sf.sentence


def test_each_seed_gets_its_own_relative_margin():
    per = {1: rounds([1.0]), 2: rounds([1.0])}
    sf = frontier_over_seeds(per, None, 0.10, {1: 5.0, 2: 20.0})
    assert sf.seed(1).status == NONE and sf.seed(2).censored
    assert sf.seed(2).margin == pytest.approx(2.0)


# -- schedules -----------------------------------------------------------------------------------
def sched(name, sparsity, macs, censored=None, seeds=(1, 2, 3), ceiling=0.992):
    n = len(sparsity)
    return ScheduleFrontier(name=name, seeds=tuple(seeds), sparsity=tuple(sparsity),
                            global_sparsity=tuple(s - 0.01 for s in sparsity), macs=tuple(macs),
                            storage=tuple(1e6 * (1 - s) for s in sparsity),
                            censored=tuple(censored or [False] * n), ceiling=(ceiling,) * n)


def test_layerwise_sparser_is_supported():
    v = layerwise_verdict([sched("uniform", [0.90, 0.91, 0.92], [10, 10, 10]),
                           sched("layerwise", [0.95, 0.955, 0.97], [10, 10, 10])])
    assert v.outcome == SUPPORTED and v.verdict == SUPPORTED and "sparser" in v.reason
    assert v.sparsity_diff_low > 0 and v.n_paired == 3
    assert v.sparsity_sign_flip_p == pytest.approx(0.25)  # 2/2³: three seeds cannot do better


def test_layerwise_cheaper_at_the_same_sparsity_is_supported():
    v = layerwise_verdict([sched("uniform", [0.90, 0.91, 0.92], [10, 11, 12]),
                           sched("layerwise", [0.90, 0.91, 0.92], [6, 7, 7.5])])
    assert v.outcome == SUPPORTED and "cheaper" in v.reason and v.macs_ratio_high < 1


def test_layerwise_less_sparse_is_contradicted():
    v = layerwise_verdict([sched("uniform", [0.95, 0.955, 0.97], [10, 10, 10]),
                           sched("layerwise", [0.90, 0.91, 0.92], [10, 10, 10])])
    assert v.outcome == CONTRADICTED and v.sparsity_diff_high < 0


def test_layerwise_within_noise_is_inconclusive():
    v = layerwise_verdict([sched("uniform", [0.90, 0.95, 0.92], [10, 10, 10]),
                           sched("layerwise", [0.95, 0.91, 0.93], [10, 10, 10])])
    assert v.outcome == INCONCLUSIVE and v.sparsity_diff_low < 0 < v.sparsity_diff_high


def test_both_censored_is_inconclusive_because_both_hit_the_ceiling():
    # layerwise is even cheaper at the ceiling: with both censored that still decides nothing
    v = layerwise_verdict([sched("uniform", [0.992] * 3, [10, 10, 10], censored=[True] * 3),
                           sched("layerwise", [0.992] * 3, [5, 5, 5], censored=[True] * 3)])
    assert v.outcome == INCONCLUSIVE and v.n_both_censored == 3
    assert "both hit the ceiling" in v.sentence and "≥ 99.2 %" in v.sentence


def test_censored_uniform_blocks_support_and_censored_layerwise_blocks_contradiction():
    # uniform censored in one seed: its frontier could be sparser still, so "layerwise sparser" is not shown
    v = layerwise_verdict([sched("uniform", [0.90, 0.91, 0.92], [10, 10, 10], censored=[False, False, True]),
                           sched("layerwise", [0.95, 0.955, 0.97], [10, 10, 10], censored=[True] * 3)])
    assert v.outcome == INCONCLUSIVE and "censored" in v.reason
    # layerwise censored and ahead: a lower bound that is already ahead still supports
    v = layerwise_verdict([sched("uniform", [0.90, 0.91, 0.92], [10, 10, 10]),
                           sched("layerwise", [0.95, 0.955, 0.97], [10, 10, 10], censored=[True] * 3)])
    assert v.outcome == SUPPORTED
    v = layerwise_verdict([sched("uniform", [0.95, 0.955, 0.97], [10, 10, 10]),
                           sched("layerwise", [0.90, 0.91, 0.92], [10, 10, 10], censored=[False, True, False])])
    assert v.outcome == INCONCLUSIVE


def test_layerwise_verdict_pairs_by_seed_and_needs_two_pairs():
    u = sched("uniform", [0.90, 0.91, 0.92], [10, 10, 10], seeds=(1, 2, 3))
    lw = sched("layerwise", [0.97, 0.95], [10, 10], seeds=(3, 1))
    v = layerwise_verdict([u, lw])
    assert v.n_paired == 2 and v.sparsity_diff == pytest.approx(((0.95 - 0.90) + (0.97 - 0.92)) / 2)
    v = layerwise_verdict([u, sched("layerwise", [0.99], [1], seeds=(2,))])
    assert v.outcome == INCONCLUSIVE and v.n_paired == 1


def test_layerwise_verdict_is_provisional_without_a_converged_baseline():
    args = [sched("uniform", [0.90, 0.91, 0.92], [10, 10, 10]), sched("layerwise", [0.95, 0.955, 0.97], [10, 10, 10])]
    v = layerwise_verdict(args, baseline_converged=False)
    assert v.outcome == SUPPORTED and v.provisional
    assert v.verdict == f"{SUPPORTED} ({PROVISIONAL})" and v.sentence.startswith(PROVISIONAL)


def test_schedule_from_frontiers_uses_each_seeds_ticket_cost():
    per = {1: rounds([0.1, 0.5, 2.0]), 2: rounds([0.1, 0.2, 0.3]), 3: rounds([3.0])}
    sf = frontier_over_seeds(per, None, 0.1, {1: 15.0, 2: 15.0, 3: 15.0}, baseline_converged=False)
    macs = {s: {k: 100.0 - 10 * k for k in range(4)} for s in per}
    s = ScheduleFrontier.from_frontiers("uniform", sf, macs, macs)
    assert s.macs == (80.0, 70.0, 100.0) and s.censored == (False, True, False)
    assert s.sparsity[2] == 0.0 and s.provisional


def test_rank_schedules_by_sparsity_then_macs_with_intervals():
    t = rank_schedules([sched("uniform", [0.90, 0.91, 0.92], [10, 10, 10]),
                        sched("lamp", [0.95, 0.955, 0.97], [9, 9, 9], censored=[False, False, True]),
                        sched("global", [0.90, 0.91, 0.92], [8, 8, 8])])
    assert list(t["schedule"]) == ["lamp", "global", "uniform"] and list(t["rank"]) == [1, 2, 3]
    lamp = t.iloc[0]
    assert lamp["sparsity_low"] < lamp["sparsity_mean"] < lamp["sparsity_high"]
    assert lamp["sparsity_lower_bound"] and lamp["censored"] == 1


def test_t_interval_and_sign_flip():
    mean, lo, hi, n = t_interval([1.0, 2.0, 3.0])
    assert (mean, n) == (2.0, 3) and hi - mean == pytest.approx(4.302653 / math.sqrt(3), rel=1e-5)
    assert math.isnan(t_interval([1.0])[1])
    assert sign_flip_p([1.0, 1.0, 1.0, 1.0]) == pytest.approx(2 / 16)
    assert sign_flip_p([1.0, -1.0]) == pytest.approx(1.0)


def test_a_tie_at_the_rounds_resolution_and_a_costlier_layerwise_say_so():
    """Same round in every seed (d = 0 exactly) and layerwise needing more MACs: inconclusive under the
    rule, with a reason that names both instead of 'the intervals include 0'."""
    v = layerwise_verdict([sched("layerwise", [0.84] * 3, [1.9e6, 1.9e6, 1.9e6]),
                           sched("uniform", [0.84] * 3, [1.0e6, 1.0e6, 1.0e6])])
    assert v.outcome == "inconclusive at this scale"
    assert "same round" in v.reason and "needs more MACs" in v.reason and "×1.90" in v.reason
    v = layerwise_verdict([sched("layerwise", [0.84, 0.936, 0.84], [1.0e6, 0.9e6, 1.1e6]),
                           sched("uniform", [0.84, 0.84, 0.936], [1.0e6, 1.0e6, 0.8e6])])
    assert "interval includes 0" in v.reason and "ratio's interval includes 1" in v.reason


def test_ranked_intervals_stay_inside_what_the_quantity_can_be():
    ranked = rank_schedules([sched("lamp", [0.84, 0.936, 0.936], [1.0e6, 0.2e6, 0.2e6])])
    row = ranked.iloc[0]
    assert row["sparsity_high"] <= 1.0 and row["global_sparsity_high"] <= 1.0
    assert row["macs_low"] >= 0.0 and row["sparsity_low"] >= 0.0
    raw_high = float(np.mean([0.84, 0.936, 0.936]) + 4.303 * np.std([0.84, 0.936, 0.936], ddof=1) / np.sqrt(3))
    assert raw_high > 1.0, "the uncut t-interval would pass 100 %"
