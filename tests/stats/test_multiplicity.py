"""Holm's step-down adjustment (pipeline.stats.multiplicity)."""
from __future__ import annotations

import math

import pytest

from pipeline.stats.multiplicity import holm


def test_holm_by_hand():
    # sorted 0.01, 0.02, 0.03, 0.04 → 4·0.01, 3·0.02, 2·0.03, 1·0.04 = 0.04, 0.06, 0.06, 0.04 → running max
    assert holm([0.03, 0.01, 0.04, 0.02]) == pytest.approx([0.06, 0.04, 0.06, 0.06])


def test_holm_caps_at_1_skips_missing_and_keeps_order():
    adj = holm([0.5, None, 0.2, math.nan])
    assert adj[0] == pytest.approx(0.5) and adj[2] == pytest.approx(0.4)   # a family of 2
    assert math.isnan(adj[1]) and math.isnan(adj[3])
    assert holm([0.6, 0.7]) == pytest.approx([1.0, 1.0])
    assert holm([]) == [] and holm([0.03]) == pytest.approx([0.03])


def test_holm_is_never_below_the_raw_p_and_rejects_bad_input():
    raw = [0.001, 0.2, 0.049, 0.011, 0.8]
    assert all(a >= r for a, r in zip(holm(raw), raw))
    with pytest.raises(ValueError):
        holm([1.5])
