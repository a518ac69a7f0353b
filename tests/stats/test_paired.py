"""The common-random-numbers standard error over seeds (pipeline.stats.paired): its documented
formula, its special cases, and the scipy tests it must reduce to."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from pipeline.stats.paired import (item_mean_cov, one_sample, paired, paired_items_over_seeds,
                                   sampling_cov, seed_mean)


def test_without_replicates_it_is_the_one_sample_t_test():
    d = np.array([-2.9, -1.4, -2.4, -1.1])
    est = paired(d + 10.0, np.full(4, 10.0))
    ref = stats.ttest_1samp(d, 0.0)
    ci = ref.confidence_interval(0.95)
    assert est.estimate == pytest.approx(d.mean())
    assert est.ci == pytest.approx((ci.low, ci.high))
    assert est.t_p == pytest.approx(ref.pvalue)
    assert est.df == 3 and est.shared_cov is None and "not measured" in est.rule


def test_shared_noise_term_is_the_mean_off_diagonal_replicate_covariance():
    rng = np.random.default_rng(0)
    shared = rng.normal(0, 1.0, 300)                      # the same resampled indices in every seed
    a_reps = 20 + shared + rng.normal(0, 0.5, (3, 300))
    b_reps = 18 + 0.4 * shared + rng.normal(0, 0.5, (3, 300))
    a, b = np.array([20.3, 19.1, 21.0]), np.array([18.2, 17.9, 18.4])
    est = paired(a, b, a_reps, b_reps)
    dr = a_reps - b_reps
    cov = np.cov(dr)
    c_hat = (cov.sum() - np.trace(cov)) / 6
    d = a - b
    se2 = d.var(ddof=1) / 3 + c_hat
    assert est.shared_cov == pytest.approx(c_hat) and c_hat > 0.2
    assert est.se == pytest.approx(math.sqrt(se2))
    assert est.df == 2  # n − 1: ĉ is estimated, not known (Satterthwaite's larger df under-covers)
    assert est.high - est.estimate == pytest.approx(stats.t.ppf(0.975, 2) * math.sqrt(se2))
    assert est.sampling_sd == pytest.approx(tuple(np.sqrt(np.diag(cov))))
    assert est.values == pytest.approx(tuple(d))
    assert "2 df" in est.rule and "Satterthwaite" not in est.rule and "joint bootstrap" in est.rule


def test_one_seed_uses_its_sampling_sd_and_says_seed_variation_is_not_measured():
    reps = np.random.default_rng(1).normal(0, 0.5, (1, 400))
    est = one_sample([12.0], reps)
    sd = reps.std(ddof=1)
    assert est.ci == pytest.approx((12.0 - 1.959964 * sd, 12.0 + 1.959964 * sd), rel=1e-6)
    assert math.isinf(est.df) and "seed variation not measured" in est.rule
    none = one_sample([12.0])
    assert math.isnan(none.low) and "no interval" in none.rule


def test_small_n_is_said():
    three = paired([1.0, 2.0, 3.0], [0.0, 0.0, 0.0])
    assert three.min_p == 0.25 and not three.exact_can_reach
    assert three.exact_p == pytest.approx(0.25)  # all signs agree: the floor
    assert "cannot go below p = 0.25" in three.small_n and "6 seeds" in three.small_n
    assert three.small_n in three.rule
    six = paired(np.arange(1.0, 7.0), np.zeros(6))
    assert six.exact_can_reach and six.small_n == "" and six.exact_p == pytest.approx(2 / 64)


def test_negative_shared_covariance_is_not_allowed_to_shrink_the_interval():
    cov = np.array([[1.0, -0.3], [-0.3, 1.0]])
    est = seed_mean([1.0, 2.0], cov, null=0.0)
    assert est.shared_cov == pytest.approx(-0.3)
    assert est.se == pytest.approx(math.sqrt(0.5 / 2)) and "set to 0" in est.rule


def test_split_replicates_are_uncentred_products():
    e = np.array([[0.5, -0.5, 1.0, -1.0], [0.2, -0.4, 0.6, 0.0]])
    assert sampling_cov(e, "split") == pytest.approx(e @ e.T / 4)
    assert sampling_cov(e, "bootstrap") == pytest.approx(np.cov(e))
    with pytest.raises(ValueError):
        sampling_cov(e, "jackknife")


def test_paired_items_over_seeds():
    rng = np.random.default_rng(3)
    d = rng.normal(0.01, 0.02, (4, 200)) + rng.normal(0, 0.02, 200)   # shared item component
    base = rng.gamma(2.0, 0.05, (4, 200))
    est = paired_items_over_seeds(base + d, base)
    means = d.mean(1)
    cov = np.cov(d) / 200
    assert item_mean_cov(d) == pytest.approx(cov)
    c_hat = (cov.sum() - np.trace(cov)) / 12
    assert est.se == pytest.approx(math.sqrt(means.var(ddof=1) / 4 + c_hat))
    one = paired_items_over_seeds(base[:1] + d[:1], base[:1])  # one seed: the per-item SE
    assert one.se == pytest.approx((d[0]).std(ddof=1) / math.sqrt(200))


def test_bad_shapes_are_errors():
    with pytest.raises(ValueError):
        paired([1.0, 2.0], [1.0])
    with pytest.raises(ValueError):
        paired([1.0, 2.0], [1.0, 2.0], np.zeros((2, 5)), None)
    with pytest.raises(ValueError):
        paired([1.0, 2.0], [1.0, 2.0], np.zeros((2, 5)), np.zeros((3, 5)))
    with pytest.raises(ValueError):
        one_sample([1.0, math.nan])
