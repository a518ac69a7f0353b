"""FID intervals over seeds (pipeline.report.fid_intervals): the FID∞ interval matches its documented
formula, and a mean FID is a geometric mean whose interval is positive without a cut, never invented."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from pipeline.report.fid_intervals import mean_fids, seed_mean_ci


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
    assert math.isnan(none.low) and math.isnan(none.high)


def test_bootstrap_noise_widens_the_interval_when_seeds_agree():
    quiet = seed_mean_ci([10.0, 10.0], [0.0, 0.0])
    noisy = seed_mean_ci([10.0, 10.0], [1.0, 1.0])
    assert quiet.low == quiet.high == 10.0
    # SE² = 0 + (1 + 1) / 4; t with 1 df is wide: two seeds say little
    assert noisy.high - noisy.low == pytest.approx(2 * stats.t.ppf(0.975, 1) * math.sqrt(0.5))


def test_mean_fids_are_geometric_positive_and_keep_a_missing_interval_missing():
    rows = pd.DataFrame({"kind": ["dense"] * 2, "seed": [1, 2], "round": [0, 0], "fid": [0.5, 3.0],
                         "fid_std": [0.1, 0.1], "fid_inf": [0.2, 2.0], "fid_inf_low": [0.0, 1.0],
                         "fid_inf_high": [0.4, 3.0]})
    fid, inf = mean_fids(rows, None, 0.95)
    assert fid.mean == pytest.approx(math.sqrt(1.5))
    # the interval of the mean log FID, mapped back: positive, never cut, and symmetric on the log scale
    assert 0.0 < fid.low < 0.5 and fid.high > 3.0 and "truncated" not in fid.rule
    assert math.log(fid.high) - math.log(fid.mean) == pytest.approx(math.log(fid.mean) - math.log(fid.low))
    assert 0.0 < inf.low and inf.high > 2.0 and "geometric mean" in inf.rule
    one, _ = mean_fids(rows.iloc[:1].assign(fid_std=[np.nan]), None, 0.95)
    assert math.isnan(one.low) and math.isnan(one.high)  # one seed without its own SD: no interval
    # a FID∞ <= 0 has no log: an arithmetic mean that says so, still not cut at 0
    _, neg = mean_fids(rows.assign(fid_inf=[-0.5, 2.0]), None, 0.95)
    assert neg.mean == pytest.approx(0.75) and neg.low < 0 and "arithmetic mean" in neg.rule
