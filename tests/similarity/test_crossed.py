"""Similarity intervals over ticket pairs and layers together, their coverage, the verdict rule, and
the magnitude null conditioned on magnitude-rank bins."""
from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from pipeline.similarity.crossed import jackknife_pairs_se, layer_variance, two_way_from_arrays, verdict
from pipeline.similarity.magnitude import predicted_kappa, rank_bins
from pipeline.similarity.summary import summarize
from pipeline.stats.pairs import kappa, pair_mean

SEEDS = (1, 2, 3, 4, 5, 6)


def _names(per_half: int = 12) -> list[str]:
    return [f"down0.blocks.{i}.conv1.weight" for i in range(per_half)] + \
           [f"up0.blocks.{i}.conv1.weight" for i in range(per_half)]


def _long(vals: dict, names: list[str]) -> pd.DataFrame:
    return pd.concat([pd.DataFrame({"pair": p, "round": 1, "layer": names, "block": [n.split(".")[0] for n in names],
                                    "depth": np.arange(len(names)), "metric": "kappa", "value": v})
                      for p, v in vals.items()], ignore_index=True)


def test_jackknife_core_matches_pair_mean():
    rng = np.random.default_rng(0)
    vals = {(a, b): float(rng.normal()) for a, b in itertools.combinations(range(5), 2)}
    m = np.zeros((5, 5))
    for (a, b), v in vals.items():
        m[a, b] = m[b, a] = v
    assert float(jackknife_pairs_se(m)) == pytest.approx(pair_mean(vals).se)


def test_layer_variance_of_a_half_difference_and_singleton_strata():
    y = np.array([1.0, 2.0, 3.0, 10.0, 14.0, 5.0])
    strata = ["up", "up", "up", "down", "down", "lone"]
    c = np.array([1 / 3, 1 / 3, 1 / 3, -1 / 3, -1 / 3, -1 / 3])
    var, df = layer_variance(y, c, strata)
    pooled = (2.0 + 8.0) / (2 + 1)  # (sum of squares 2 + 8) over (2 + 1) df
    assert df == 3 and float(var) == pytest.approx(3 * 1.0 / 9 + 2 * 8.0 / 9 + pooled / 9)


def test_tiny_pair_variance_and_large_layer_variance_is_inconclusive():
    """Every pair agrees on the upstream advantage to 1e-4, but the layers scatter by 0.3 around it: the
    pair-only interval excludes 0; the claim, over pairs and layers, must not call it."""
    rng = np.random.default_rng(1)
    names = _names()
    L = len(names)
    layer = 0.5 + 0.05 * (np.arange(L) < L // 2) + rng.normal(0, 0.3, L)  # this network's layers
    vals = {f"{a}-{b}": layer + rng.normal(0, 1e-4, L) for a, b in itertools.combinations(SEEDS, 2)}
    c = summarize(_long(vals, names), "kappa", seeds=SEEDS, resamples=500)["claims"]["upstream_vs_downstream"]
    assert c["ci_pairs"][0] > 0 or c["ci_pairs"][1] < 0          # pairs alone would decide ...
    assert c["ci"][0] < 0 < c["ci"][1] and c["verdict"] == "inconclusive"  # ... layers do not
    assert c["p"] >= 0.05 and c["p"] == max(c["p_two_way"], c["p_layers"])
    assert c["n_pairs"] == 15 and c["n_layers"] == L and c["se_layers"] > 10 * c["se_pairs"]


def test_both_levels_agreeing_gives_a_side():
    rng = np.random.default_rng(2)
    names = _names()
    L = len(names)
    layer = 0.5 + 0.3 * (np.arange(L) < L // 2) + rng.normal(0, 0.02, L)
    vals = {f"{a}-{b}": layer + rng.normal(0, 0.01, L) for a, b in itertools.combinations(SEEDS, 2)}
    c = summarize(_long(vals, names), "kappa", seeds=SEEDS, resamples=500)["claims"]["upstream_vs_downstream"]
    assert c["ci"][0] > 0 and c["p_layers"] < 0.05 and c["verdict"] == "more" and c["p"] < 0.05


def test_verdict_needs_both_levels():
    assert verdict([0.1, 0.3], 0.001, 0.2) == ("inconclusive", 0.2)   # layer permutation disagrees
    assert verdict([-0.1, 0.3], 0.4, 0.001) == ("inconclusive", 0.4)  # interval contains 0
    assert verdict([-0.3, -0.1], 0.001, 0.01) == ("less", 0.01)
    assert verdict(None, None, 0.01) == ("inconclusive", None)


def test_two_way_interval_covers_under_crossed_pair_and_layer_effects():
    """Crossed random effects: per-seed effects by half (pairs share seeds), pair x half effects, layer
    effects within half x type strata and pair x layer noise; the truth is the difference of the strata
    means the layers are drawn from. Coverage of the 95 % interval over 2000 trials per setting >= 95 %."""
    rng = np.random.default_rng(20261206)
    T, L = 2000, 24
    half = np.arange(L) < L // 2
    types = np.where(np.arange(L) % 3 == 0, "attn", "conv")
    strata = [f"{h}|{t}" for h, t in zip(half, types)]
    mu = np.where(half, 0.4, 0.35) + np.where(types == "attn", 0.1, 0.0)
    coef = np.where(half, 1.0 / half.sum(), -1.0 / (~half).sum())
    truth = float(coef @ mu)
    for n, s_seed, s_pair, s_layer in ((4, 0.03, 0.02, 0.01), (8, 0.01, 0.01, 0.05), (6, 0.02, 0.02, 0.02)):
        iu = np.triu_indices(n, 1)
        seed = rng.normal(0, s_seed, (T, n, 2))                      # a seed's tickets, per half
        by_half = seed[:, iu[0], :] + seed[:, iu[1], :] + rng.normal(0, s_pair, (T, len(iu[0]), 2))
        y = (mu + rng.normal(0, s_layer, (T, 1, L)) + by_half[:, :, half.astype(int)]
             + rng.normal(0, 0.02, (T, len(iu[0]), L)))              # (T, pairs, L)
        per_pair = y @ coef                                         # (T, pairs)
        m = np.zeros((T, n, n))
        m[:, iu[0], iu[1]] = per_pair
        m = m + m.transpose(0, 2, 1)
        var_l, df_l = layer_variance(y.mean(axis=1), coef, strata)
        r = two_way_from_arrays(per_pair.mean(axis=1), jackknife_pairs_se(m), var_l, n, df_l)
        coverage = np.mean((r["low"] <= truth) & (truth <= r["high"]))
        assert coverage >= 0.95, (n, coverage)


# -- the magnitude null -----------------------------------------------------------------------------
def _smooth_tickets(seed: int, n: int = 60000):
    """A shared start w; each ticket keeps a weight with a probability rising smoothly with its |w| rank,
    independently of the other ticket given w."""
    rng = np.random.default_rng(seed)
    w = rng.normal(size=n)
    rank = np.argsort(np.argsort(np.abs(w), kind="stable"), kind="stable") / n
    keep = 1 / (1 + np.exp(-(rank - 0.7) * 8))
    return w, rng.random(n) < keep, rng.random(n) < keep


def _top(w: np.ndarray, k: int) -> np.ndarray:
    m = np.zeros(w.size, bool)
    m[np.argsort(-np.abs(w), kind="stable")[:k]] = True
    return m


def test_rank_bins_predict_conditionally_independent_tickets_and_the_binary_chain_does_not():
    for seed in range(3):
        w, a, b = _smooth_tickets(seed)
        observed = float(kappa(a, b))
        pred = predicted_kappa(a, rank_bins(w, 20, int(a.sum())), b, rank_bins(w, 20, int(b.sum())), 20)
        ma, mb = _top(w, int(a.sum())), _top(w, int(b.sum()))
        binary = float(kappa(a, ma) * kappa(ma, mb) * kappa(mb, b))
        assert abs(observed - pred) < 0.01          # excess ~ 0 given the ranks
        assert observed - binary > 0.05             # the top-k chain calls it agreement beyond magnitude


def test_a_ticket_that_is_its_magnitude_mask_is_predicted_exactly():
    w = np.random.default_rng(5).normal(size=1001)
    a = _top(w, 300)
    assert predicted_kappa(a, rank_bins(w, 7, 300), a, rank_bins(w, 7, 300), 7) == pytest.approx(1.0)
