"""Exact sign-flip and within-strata permutation tests (pipeline.stats.exact)."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from pipeline.stats.exact import (arrangements, min_p, sign_flip_test, stratified_permutation_test)


def brute_sign_flip(d, alternative):
    d = np.asarray(d, float)
    obs = d.mean()
    null = np.array([np.mean(d * s) for s in itertools.product((1, -1), repeat=d.size)])
    ge, le = np.mean(null >= obs - 1e-12), np.mean(null <= obs + 1e-12)
    return {"greater": ge, "less": le, "two-sided": min(1.0, 2 * min(ge, le))}[alternative]


@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
@pytest.mark.parametrize("d", [[1.2, 0.3, 2.0], [0.5, -0.1, 0.8, 1.1, 0.9], [-2.0, 0.4, 0.1, -0.3, 0.2, -1.0, 0.7]])
def test_sign_flip_enumerates_every_pattern(d, alternative):
    res = sign_flip_test(d, alternative=alternative)
    assert res.exact and res.resamples == 2 ** len(d)
    assert res.p == pytest.approx(brute_sign_flip(d, alternative))


def test_min_p_is_reached_when_all_signs_agree_and_no_lower():
    for n in (1, 2, 3, 5, 8):
        assert sign_flip_test(np.arange(1, n + 1)).p == pytest.approx(min_p(n)) == pytest.approx(2 / 2 ** n)
        assert sign_flip_test(np.arange(1, n + 1), alternative="greater").p == pytest.approx(1 / 2 ** n)
    assert min_p(3) == 0.25
    assert "0.25" in sign_flip_test([1.0, 2.0, 3.0]).rule


def test_sign_flip_null_shifts_and_large_n_is_monte_carlo_and_seeded():
    d = np.array([2.1, 1.9, 2.4])
    assert sign_flip_test(d, null=2.0).p > 0.25 > sign_flip_test(d, null=0.0).p - 1e-12
    rng = np.random.default_rng(0)
    big = rng.normal(0.3, 1.0, 20)
    a, b = sign_flip_test(big, seed=1), sign_flip_test(big, seed=1)
    assert not a.exact and a.resamples == 9999 and a.p == b.p


def test_stratified_permutation_keeps_labels_inside_strata():
    # stratum "skip" holds only downstream layers with high values: a plain permutation would call the
    # halves different; within strata the skip layers cannot move, and the rest show no difference
    rng = np.random.default_rng(3)
    conv = rng.normal(0.3, 0.05, 30)
    values = np.concatenate([conv, [0.8, 0.85, 0.9, 0.88, 0.82, 0.86]])
    down = np.concatenate([np.arange(30) % 2 == 0, [True] * 6])
    strata = np.array(["conv"] * 30 + ["skip"] * 6)
    naive = stratified_permutation_test(values, down, np.zeros(36), seed=0)
    within = stratified_permutation_test(values, down, strata, seed=0)
    assert naive.p < 0.05
    assert within.p > 0.3
    assert within.statistic == pytest.approx(values[down].mean() - values[~down].mean())
    assert within == stratified_permutation_test(values, down, strata, seed=0)


def test_stratified_permutation_detects_a_real_effect_and_counts_arrangements():
    rng = np.random.default_rng(4)
    strata = np.repeat(["a", "b", "c"], 10)
    up = np.tile(np.arange(10) < 5, 3)
    values = rng.normal(0, 0.1, 30) + 0.3 * up + np.repeat([0.0, 1.0, 2.0], 10)
    res = stratified_permutation_test(values, up, strata, alternative="greater", n_resamples=1999)
    assert res.p == pytest.approx(1 / 2000)
    assert arrangements(up, strata) == 252 ** 3
    assert arrangements([1, 1, 0], ["x", "x", "y"]) == 1
    with pytest.raises(ValueError):
        stratified_permutation_test(values, up, strata[:-1])
