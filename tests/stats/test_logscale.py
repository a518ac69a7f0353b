"""FID ratios and geometric means on the log scale (pipeline.stats.logscale)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from pipeline.stats.logscale import geometric_mean, log_ratio, log_replicates
from pipeline.stats.paired import paired


def test_log_ratio_is_the_paired_log_difference_mapped_back():
    a, b = np.array([22.0, 25.0, 21.0]), np.array([20.0, 21.0, 20.5])
    rng = np.random.default_rng(0)
    ea, eb = rng.normal(0, 0.5, (3, 50)), rng.normal(0, 0.5, (3, 50))
    est = log_ratio(a, b, ea, eb, kind="split", null_ratio=1.1)
    ref = paired(np.log(a), np.log(b), ea / a[:, None], eb / b[:, None], kind="split", null=math.log(1.1))
    assert est.log.estimate == pytest.approx(ref.estimate) and est.log.df == 2
    assert est.ratio == pytest.approx(math.exp(ref.estimate))
    assert est.ci == pytest.approx((math.exp(ref.low), math.exp(ref.high)))
    assert est.log.t_p == pytest.approx(ref.t_p)
    assert "log FID ratio" in est.rule


def test_geometric_mean_interval_is_positive_where_a_symmetric_one_goes_below_0():
    values = [30.0, 60.0, 200.0]
    est = geometric_mean(values)
    assert est.ratio == pytest.approx((30 * 60 * 200) ** (1 / 3))
    arithmetic = paired(np.array(values), np.zeros(3))
    assert arithmetic.low < 0 < est.low and est.high > 200


def test_log_replicates_and_bad_values():
    split = log_replicates([10.0, 20.0], [[1.0, -1.0], [2.0, 0.0]], "split")
    assert np.allclose(split, [[0.1, -0.1], [0.1, 0.0]])  # delta method: e / FID
    boot = log_replicates([10.0], [[10.0, math.e * 10]], "bootstrap")
    assert np.allclose(boot, [[math.log(10), 1 + math.log(10)]])
    with pytest.raises(ValueError):
        geometric_mean([0.0, 1.0])
