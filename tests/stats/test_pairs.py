"""Ticket pairs as the unit (pipeline.stats.pairs): the U-statistic and its seed-level jackknife, and
the conditional-independence prediction of agreement from the starting magnitudes."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from pipeline.stats.pairs import kappa, magnitude_excess, pair_mean


def test_u_statistic_and_jackknife_by_hand_for_three_seeds():
    vals = {(1, 2): 0.40, (1, 3): 0.46, (2, 3): 0.37}
    est = pair_mean(vals)
    assert est.estimate == pytest.approx(np.mean(list(vals.values())))
    # deleting seed k leaves the one pair without k
    assert est.leave_one_out == pytest.approx({1: 0.37, 2: 0.46, 3: 0.40})
    theta = np.array([0.37, 0.46, 0.40])
    se = math.sqrt(2 / 3 * np.sum((theta - theta.mean()) ** 2))
    assert est.se == pytest.approx(se)
    assert est.high - est.estimate == pytest.approx(stats.t.ppf(0.975, 2) * se)
    assert "very rough" in est.rule and est.pairs == vals


def test_pair_order_is_free_and_fewer_than_three_seeds_refused():
    assert pair_mean({(2, 1): 1.0, (3, 1): 2.0, (3, 2): 3.0}).estimate == pytest.approx(2.0)
    with pytest.raises(ValueError, match="at least 3 seeds"):
        pair_mean({(1, 2): 0.4})
    with pytest.raises(KeyError):
        pair_mean({(1, 2): 0.4, (1, 3): 0.5}, seeds=[1, 2, 3])


def test_pair_values_and_jackknife_for_more_seeds():
    seeds = list(range(5))
    objs = {s: float(s) for s in seeds}
    vals = {(s, t): objs[s] * objs[t] for s in seeds for t in seeds if s < t}
    assert len(vals) == 10 and vals[(2, 4)] == 8.0
    est = pair_mean(vals)
    assert est.low < est.estimate < est.high and "rough" in est.rule
    # the jackknife of a U-statistic is (slightly) conservative: over random seed effects it covers
    rng = np.random.default_rng(0)
    hits = 0
    for _ in range(300):
        u = rng.normal(0, 1, 8)
        v = {(s, t): u[s] + u[t] + rng.normal(0, 0.5) for s in range(8) for t in range(s + 1, 8)}
        hits += pair_mean(v).low <= 0 <= pair_mean(v).high
    assert 0.9 <= hits / 300 <= 1.0


def masks_from_magnitudes(rng, layers, size, density, rho_start, flip, shared=0.0):
    """Per layer: magnitude masks M_A, M_B (top-`density` of two starting magnitudes correlated
    rho_start) and tickets A, B = their magnitude mask with `flip` of the kept entries swapped for
    pruned ones, at random (independently in A and B), or, with `shared` > 0, that fraction of the
    swaps following one common pattern S (structure the starting points do not explain)."""
    k = int(density * size)
    out = []
    for _ in range(layers):
        z = rng.normal(size=(2, size))
        w = np.stack([z[0], rho_start * z[0] + math.sqrt(1 - rho_start ** 2) * z[1]])
        common = rng.normal(size=size)

        def top(score):
            m = np.zeros(size, bool)
            m[np.argsort(-score)[:k]] = True
            return m

        ms = [top(np.abs(x)) for x in w]
        tickets = []
        for m in ms:
            kept, pruned = np.flatnonzero(m), np.flatnonzero(~m)
            nflip = int(flip * k)
            nshared = int(shared * nflip)
            # shared swaps: drop the kept entries, add the pruned ones, with the largest common score
            drop = np.concatenate([kept[np.argsort(-common[kept])[:nshared]],
                                   rng.choice(kept[np.argsort(-common[kept])[nshared:]], nflip - nshared, replace=False)])
            add = np.concatenate([pruned[np.argsort(-common[pruned])[:nshared]],
                                  rng.choice(pruned[np.argsort(-common[pruned])[nshared:]], nflip - nshared, replace=False)])
            t = m.copy()
            t[drop], t[add] = False, True
            tickets.append(t)
        out.append((tickets[0], tickets[1], ms[0], ms[1]))
    return out


def excess_of(layers):
    a, b, ma, mb = (np.stack(x) for x in zip(*layers))
    return magnitude_excess(kappa(a, b), kappa(a, ma), kappa(ma, mb), kappa(mb, b))


def test_magnitude_plus_independent_flips_is_predicted_by_the_kappa_product():
    rng = np.random.default_rng(5)
    ex = excess_of(masks_from_magnitudes(rng, layers=30, size=20000, density=0.3, rho_start=0.9, flip=0.25))
    assert np.all(ex.observed > 0.2)                      # the tickets do agree...
    assert abs(ex.mean_excess) < 0.003                    # ...exactly as much as their starts predict
    assert np.all(np.abs(ex.excess) < 0.025) and 5 <= ex.layers_above <= 25
    # comparing with κ(A, M_A) instead (the old null) would have called this agreement 'explained'
    # only because κ(A, M_A) is large, not because A and B share anything beyond M_A, M_B


def test_shared_structure_beyond_the_magnitudes_is_detected():
    rng = np.random.default_rng(6)
    ex = excess_of(masks_from_magnitudes(rng, layers=30, size=20000, density=0.3, rho_start=0.9, flip=0.25,
                                         shared=0.3))
    assert ex.mean_excess > 0.08 and ex.layers_above == 30


def test_kappa_matches_the_textbook_formula_and_shapes_are_checked():
    a = np.array([1, 1, 0, 0, 1, 0, 1, 0])
    b = np.array([1, 0, 0, 0, 1, 1, 1, 0])
    po, pe = 6 / 8, 0.5 * 0.5 + 0.5 * 0.5
    assert kappa(a, b) == pytest.approx((po - pe) / (1 - pe))
    with pytest.raises(ValueError):
        magnitude_excess([0.1, 0.2], [0.5], [0.5], [0.5])
