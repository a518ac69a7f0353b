"""Verdict rules (pipeline.report.verdicts): each verdict flips when the effect moves beyond the noise and
stays put while it moves within it; the seed interval matches its documented formula."""
from __future__ import annotations

import math

import pytest
from scipy import stats

from pipeline.report.verdicts import (CONTRADICTED, INCONCLUSIVE, SUPPORTED, noninferiority, paired_difference_ci,
                                      seed_mean_ci, superiority)


def test_seed_mean_ci_is_the_documented_formula():
    est = seed_mean_ci([10.0, 12.0, 14.0], [0.5, 0.5, 1.0])
    se = math.sqrt(4.0 / 3 + (0.25 + 0.25 + 1.0) / 9)  # s² = 4 (ddof 1); bootstrap variances / n²
    half = stats.t.ppf(0.975, 2) * se
    assert est.mean == 12.0 and est.n == 3
    assert est.low == pytest.approx(12.0 - half) and est.high == pytest.approx(12.0 + half)
    assert "Student-t" in est.rule and "2 df" in est.rule


def test_seed_mean_ci_with_one_seed_uses_the_bootstrap_alone():
    est = seed_mean_ci([20.0], [1.0])
    assert est.ci == pytest.approx((20.0 - 1.959964, 20.0 + 1.959964), abs=1e-5)
    assert "seed variation not measured" in est.rule
    none = seed_mean_ci([20.0], [None])
    assert math.isnan(none.low) and noninferiority(none.ci, 5.0) == INCONCLUSIVE


def test_bootstrap_noise_widens_the_interval_when_seeds_agree():
    quiet = seed_mean_ci([10.0, 10.0], [0.0, 0.0])
    noisy = seed_mean_ci([10.0, 10.0], [1.0, 1.0])
    assert quiet.low == quiet.high == 10.0
    # SE² = 0 + (1 + 1) / 4; t with 1 df is wide: two seeds say little
    assert noisy.high - noisy.low == pytest.approx(2 * stats.t.ppf(0.975, 1) * math.sqrt(0.5))


def test_paired_difference_pairs_by_seed():
    # seed effects cancel in the difference: each seed's ticket is 3 above its own dense
    est = paired_difference_ci([13.0, 23.0], [0.1, 0.1], [10.0, 20.0], [0.1, 0.1])
    assert est.mean == 3.0
    assert est.high - est.low < 3  # only bootstrap noise remains, not the 10-point seed spread
    with pytest.raises(ValueError):
        paired_difference_ci([1.0], [0.1], [1.0, 2.0], [0.1, 0.1])


@pytest.mark.parametrize("delta, expected", [(0.0, SUPPORTED), (0.7, SUPPORTED), (2.5, INCONCLUSIVE),
                                             (3.3, CONTRADICTED), (8.0, CONTRADICTED)])
def test_noninferiority_flips_only_beyond_the_noise(delta, expected):
    """ΔFID with a noise half-width of t(1 df) x 0.1 = 1.27 against margin 2: supported while the whole interval is
    under the margin, inconclusive while it straddles, contradicted once it clears the margin."""
    est = paired_difference_ci([50.0 + delta, 51.0 + delta], [0.1, 0.1], [50.0, 51.0], [0.1, 0.1])
    assert est.high - est.low == pytest.approx(2 * stats.t.ppf(0.975, 1) * 0.1, rel=1e-6)
    assert noninferiority(est.ci, margin=2.0) == expected


def test_noninferiority_boundaries():
    assert noninferiority((-1.0, 2.0), 2.0) == SUPPORTED  # upper end at the margin counts as within
    assert noninferiority((2.0, 5.0), 2.0) == INCONCLUSIVE  # lower end at the margin is not beyond it
    assert noninferiority((2.01, 5.0), 2.0) == CONTRADICTED
    assert noninferiority((math.nan, 1.0), 2.0) == INCONCLUSIVE


def test_noise_alone_turns_a_supported_verdict_inconclusive():
    """Same mean ΔFID 1.0; what changes is the seeds' disagreement."""
    tight = paired_difference_ci([51.0, 51.2], [0.05, 0.05], [50.0, 50.2], [0.05, 0.05])
    loose = paired_difference_ci([53.0, 49.2], [0.05, 0.05], [50.0, 50.2], [0.05, 0.05])
    assert tight.mean == pytest.approx(1.0) and loose.mean == pytest.approx(1.0)
    assert noninferiority(tight.ci, 2.0) == SUPPORTED
    assert noninferiority(loose.ci, 2.0) == INCONCLUSIVE
    assert superiority(tight.ci) == SUPPORTED and superiority(loose.ci) == INCONCLUSIVE


@pytest.mark.parametrize("effect, expected", [(-0.3, CONTRADICTED), (-0.05, INCONCLUSIVE), (0.0, INCONCLUSIVE),
                                              (0.05, INCONCLUSIVE), (0.3, SUPPORTED)])
def test_superiority_flips_when_the_interval_clears_zero(effect, expected):
    ci = (effect - 0.1, effect + 0.1)
    assert superiority(ci, "positive") == expected
    flipped = {SUPPORTED: CONTRADICTED, CONTRADICTED: SUPPORTED, INCONCLUSIVE: INCONCLUSIVE}[expected]
    assert superiority(ci, "negative") == flipped
    with pytest.raises(ValueError):
        superiority(ci, "up")


def test_verdicts_read_the_common_random_numbers_interval():
    """The replacement interval (pipeline.stats.paired) feeds the same verdict rules."""
    import numpy as np

    from pipeline.stats.paired import paired

    rng = np.random.default_rng(0)
    shared = rng.normal(0, 0.5, 200)
    reps_a, reps_b = shared + rng.normal(0, 0.2, (3, 200)), shared + rng.normal(0, 0.2, (3, 200))
    est = paired([50.4, 50.9, 51.3], [50.0, 50.6, 51.0], reps_a, reps_b)
    assert est.low < est.estimate < est.high
    assert noninferiority(est.ci, margin=2.0) == SUPPORTED
    assert superiority(est.ci) in (SUPPORTED, INCONCLUSIVE)
