"""Schedules ranked on the frontier and the layerwise verdict (numbers and statuses from
pipeline.stats.ranking, words from pipeline.report.text)."""
import math

import numpy as np
import pytest

from pipeline.report import text as T
from pipeline.report.text import PROVISIONAL
from pipeline.stats.exact import sign_flip_test
from pipeline.stats.frontier import RoundInterval, frontier_over_seeds

SPARSITY = [1 - 0.45 ** k for k in range(1, 7)]  # 6 rounds at rate 0.55: 55 % … 99.2 %


def rounds(uppers, sparsity=SPARSITY):
    """Rounds 1..K with the given interval upper ends (estimate 1 below; global 1 pp below prunable)."""
    return [RoundInterval(k, s, s - 0.01, u - 1.0, u) for k, (s, u) in enumerate(zip(sparsity, uppers), start=1)]
from pipeline.stats.ranking import ScheduleFrontier, layerwise_verdict, rank_schedules
from pipeline.stats.tdist import t_interval
from pipeline.stats.verdicts import CONTRADICTED, INCONCLUSIVE, SUPPORTED


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
    assert v.outcome == SUPPORTED and T.layerwise_verdict_text(v) == SUPPORTED and "sparser" in T.layerwise_reason(v)
    assert v.sparsity_diff_low > 0 and v.n_paired == 3
    assert v.sparsity_sign_flip_p == pytest.approx(0.25)  # 2/2³: three seeds cannot do better


def test_layerwise_cheaper_at_the_same_sparsity_is_supported():
    v = layerwise_verdict([sched("uniform", [0.90, 0.91, 0.92], [10, 11, 12]),
                           sched("layerwise", [0.90, 0.91, 0.92], [6, 7, 7.5])])
    assert v.outcome == SUPPORTED and "cheaper" in T.layerwise_reason(v) and v.macs_ratio_high < 1


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
    assert "both hit the ceiling" in T.layerwise_sentence(v) and "≥ 99.2 %" in T.layerwise_sentence(v)


def test_censored_uniform_blocks_support_and_censored_layerwise_blocks_contradiction():
    # uniform censored in one seed: its frontier could be sparser still, so "layerwise sparser" is not shown
    v = layerwise_verdict([sched("uniform", [0.90, 0.91, 0.92], [10, 10, 10], censored=[False, False, True]),
                           sched("layerwise", [0.95, 0.955, 0.97], [10, 10, 10], censored=[True] * 3)])
    assert v.outcome == INCONCLUSIVE and "censored" in T.layerwise_reason(v)
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
    assert T.layerwise_verdict_text(v) == f"{SUPPORTED} ({PROVISIONAL})" and T.layerwise_sentence(v).startswith(PROVISIONAL)


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


@pytest.mark.parametrize("seed", range(40))
def test_the_layerwise_sign_flip_p_is_the_exact_enumeration(seed):
    """The one sign-flip test (scipy's permutation_test) gives what enumerating every sign pattern gives,
    ties included (sparsity differences come on a grid of rounds)."""
    rng = np.random.default_rng(seed)
    d = rng.choice([-0.1, 0.0, 0.05, 0.1, 0.2], size=int(rng.integers(1, 9)))
    n = d.size
    signs = np.array(np.meshgrid(*[[-1.0, 1.0]] * n, indexing="ij")).reshape(n, -1).T
    brute = float(np.mean(np.abs(signs @ d) / n >= abs(d.mean()) - 1e-12 * max(1.0, abs(d.mean()))))
    assert sign_flip_test(d).p == pytest.approx(brute, abs=1e-12)


def test_t_interval_and_sign_flip():
    mean, lo, hi, n = t_interval([1.0, 2.0, 3.0])
    assert (mean, n) == (2.0, 3) and hi - mean == pytest.approx(4.302653 / math.sqrt(3), rel=1e-5)
    assert math.isnan(t_interval([1.0])[1])
    assert sign_flip_test([1.0, 1.0, 1.0, 1.0]).p == pytest.approx(2 / 16)
    assert sign_flip_test([1.0, -1.0]).p == pytest.approx(1.0)


def test_a_tie_at_the_rounds_resolution_and_a_costlier_layerwise_say_so():
    """Same round in every seed (d = 0 exactly) and layerwise needing more MACs: inconclusive under the
    rule, with a reason that names both instead of 'the intervals include 0'."""
    v = layerwise_verdict([sched("layerwise", [0.84] * 3, [1.9e6, 1.9e6, 1.9e6]),
                           sched("uniform", [0.84] * 3, [1.0e6, 1.0e6, 1.0e6])])
    assert v.outcome == "inconclusive at this scale"
    assert "same round" in T.layerwise_reason(v) and "needs more MACs" in T.layerwise_reason(v) and "×1.90" in T.layerwise_reason(v)
    v = layerwise_verdict([sched("layerwise", [0.84, 0.936, 0.84], [1.0e6, 0.9e6, 1.1e6]),
                           sched("uniform", [0.84, 0.84, 0.936], [1.0e6, 1.0e6, 0.8e6])])
    assert "interval includes 0" in T.layerwise_reason(v) and "ratio's interval includes 1" in T.layerwise_reason(v)


def test_ranked_intervals_stay_inside_what_the_quantity_can_be():
    ranked = rank_schedules([sched("lamp", [0.84, 0.936, 0.936], [1.0e6, 0.2e6, 0.2e6])])
    row = ranked.iloc[0]
    assert row["sparsity_high"] <= 1.0 and row["global_sparsity_high"] <= 1.0
    assert row["macs_low"] >= 0.0 and row["sparsity_low"] >= 0.0
    raw_high = float(np.mean([0.84, 0.936, 0.936]) + 4.303 * np.std([0.84, 0.936, 0.936], ddof=1) / np.sqrt(3))
    assert raw_high > 1.0, "the uncut t-interval would pass 100 %"
