"""The similarity claims with the ticket pair as the unit: every pair of seeds compared and averaged
(U-statistic, seed-level jackknife), permutations within layer-type strata, and the magnitude claim
against the conditional-independence prediction, worded by its interval."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
import torch

from pipeline.similarity.agreement import (agreement, block_of, compare_tickets, layer_type, magnitude_mask,
                                           pair_label)
from pipeline.report.text import magnitude_sentence, similarity_finding
from pipeline.similarity.magnitude import predicted_agreement
from pipeline.similarity.summary import POPULATION_PER_SEED
from pipeline.similarity.summary import summarize as _summarize
from pipeline.sparsity.masks import Mask
from pipeline.stats.pairs import pair_mean
from pipeline.stats.verdicts import side as verdict_side

SEEDS = (1, 2, 3)


def summarize(*args, **kwargs) -> dict:
    """The summary as the similarity stage writes it: the claims plus the report's paragraph on them."""
    out = _summarize(*args, **kwargs)
    out["finding"] = similarity_finding(out, POPULATION_PER_SEED)
    return out


def _names(levels: int = 3, per_block: int = 4) -> list[str]:
    return ([f"down.{i}.blocks.0.c{j}.weight" for i in range(levels) for j in range(per_block)]
            + [f"mid_block1.c{j}.weight" for j in range(2)]
            + [f"up.{i}.blocks.0.c{j}.weight" for i in range(levels) for j in range(per_block)])


def _long(values: dict[str, np.ndarray], names: list[str], k: int = 1) -> pd.DataFrame:
    """A kappa table from per-pair per-layer values {"a-b": array over `names`}."""
    return pd.concat([pd.DataFrame({"pair": p, "round": k, "layer": names, "block": [block_of(n) for n in names],
                                    "depth": range(len(names)), "metric": "kappa", "value": v})
                      for p, v in values.items()], ignore_index=True)


def _pairs(seeds=SEEDS) -> list[str]:
    return [pair_label(a, b) for a, b in itertools.combinations(seeds, 2)]


# -- the U-statistic over pairs ------------------------------------------------------------------
def test_claim_effect_is_the_mean_of_the_pair_values_with_the_seed_jackknife():
    names = _names()
    rng = np.random.default_rng(0)
    L, h = len(names), len(names) // 2
    up = np.arange(L) < h
    seed_effect = {1: 0.02, 2: -0.03, 3: 0.05}  # each seed's tickets shift the upstream advantage
    vals = {}
    for a, b in itertools.combinations(SEEDS, 2):
        vals[pair_label(a, b)] = 0.3 + (0.1 + seed_effect[a] + seed_effect[b]) * up + rng.normal(0, 0.01, L)
    s = summarize(_long(vals, names), "kappa", seeds=SEEDS, resamples=200)
    assert s["pairs"] == ["1-2", "1-3", "2-3"] and s["n_pairs"] == 3
    assert s["population"]["n_pairs"] == 3 and "data order" in s["population"]["is"]
    up_claim = s["claims"]["upstream_vs_downstream"]
    by_pair = {p: v[:h].mean() - v[L - h:].mean() for p, v in vals.items()}
    assert up_claim["pairs"] == pytest.approx(by_pair)
    assert up_claim["effect"] == pytest.approx(np.mean(list(by_pair.values())))
    est = pair_mean({(int(p[0]), int(p[2])): v for p, v in by_pair.items()})
    # the pair-only interval is the seed jackknife; the claim's interval adds the layer part
    assert up_claim["ci_pairs"] == pytest.approx([est.low, est.high]) and up_claim["se_pairs"] == pytest.approx(est.se)
    assert up_claim["se"] ** 2 == pytest.approx(est.se ** 2 + up_claim["se_layers"] ** 2)
    assert up_claim["ci"][0] < est.low and up_claim["ci"][1] > est.high
    assert up_claim["n_layers"] == 2 * h and up_claim["p_layers"] == up_claim["p_value"]
    assert "very rough" in up_claim["ci_rule"] and "very rough" in s["finding"]
    assert up_claim["n_pairs"] == 3 and up_claim["unit"] == "ticket pair"
    # every pair's value is in the sentence too
    assert all(f"{p} {v:+.3f}" in s["finding"] for p, v in by_pair.items())
    assert s["rounds"][0]["difference_by_pair"] == pytest.approx(by_pair)


def test_one_pair_has_no_interval_and_no_verdict_beyond_inconclusive():
    names = _names()
    L = len(names)
    s = summarize(_long({"1-2": 0.5 * (np.arange(L) < L // 2) + 0.1}, names), "kappa", seeds=(1, 2), resamples=100)
    c = s["claims"]["upstream_vs_downstream"]
    assert c["effect"] == pytest.approx(0.5) and c["ci"] is None and "at least 3 seeds" in c["ci_rule"]
    assert verdict_side(c["ci"]) == "inconclusive" and "no interval" in s["finding"]


# -- permutations within layer-type strata -------------------------------------------------------
def _typed_path(rng, n_pairs_seeds=SEEDS):
    """A path of 3x3 convs without any positional effect, plus six 1x1 skip convs that all sit
    downstream and agree strongly (as the U-Net's do): type, not position, drives the difference."""
    names = _names(3, 4)
    L = len(names)
    skips = [names[L - 1 - 2 * i] for i in range(6)]  # six of the 13 downstream layers
    types = {n: ("skip1x1" if n in skips else "conv3x3") for n in names}
    conv_rank = np.cumsum([types[n] == "conv3x3" for n in names])
    base = 0.3 + 0.02 * (-1.0) ** conv_rank  # the convs scatter, with no trend along the path
    vals = {p: base + np.where([types[n] == "skip1x1" for n in names], 0.5, 0.0) + rng.normal(0, 0.005, L)
            for p in _pairs(n_pairs_seeds)}
    return names, types, skips, vals


def test_stratified_permutation_differs_from_unstratified_when_type_drives_the_effect():
    names, types, skips, vals = _typed_path(np.random.default_rng(1))
    df = _long(vals, names)
    strat = summarize(df, "kappa", seeds=SEEDS, resamples=2000, layer_types=types)["claims"]["upstream_vs_downstream"]
    plain = summarize(df, "kappa", seeds=SEEDS, resamples=2000,
                      layer_types=dict.fromkeys(names, "conv3x3"))["claims"]["upstream_vs_downstream"]
    assert strat["effect"] == pytest.approx(plain["effect"]) and strat["effect"] < -0.1  # the skips pull it down
    # shuffling skip convs into the upstream half makes the observed split look extreme ...
    assert plain["p_value"] < 0.05 and strat["p_value_unstratified"] == pytest.approx(plain["p_value"], abs=0.01)
    # ... but within types the 3x3 convs carry no positional effect and the skips never move
    assert strat["p_value"] > 0.5
    assert strat["strata"]["skip1x1"] == {"upstream": 0, "downstream": 6}
    # without the skip convs the difference is ~0
    without = strat["without_skip"]
    assert sorted(without["layers_left_out"]) == sorted(skips) and abs(without["effect"]) < 0.02
    assert without["ci"][0] < 0 < without["ci"][1] and without["downstream_layers"] == strat["layers_per_half"] - 6


def test_layer_types_from_names_and_shapes():
    assert layer_type("up.0.blocks.0.skip.weight", (8, 16, 1, 1)) == "skip1x1"
    assert layer_type("final_block.skip.weight", (8, 16, 1, 1)) == "skip1x1"
    assert layer_type("mid_attn.qkv.weight", (48, 16, 1, 1)) == layer_type("down.2.attn.proj.weight") == "attention"
    assert layer_type("time_embed.1.weight", (64, 16)) == layer_type("up.1.blocks.0.time_proj.weight", (8, 64)) == "linear"
    assert layer_type("down.0.blocks.0.conv1.weight", (8, 8, 3, 3)) == "conv3x3"
    assert layer_type("final_conv.weight", (1, 8, 1, 1)) == "conv1x1"


# -- the magnitude claim -------------------------------------------------------------------------
def _magnitude_study(seed: int, *, shared: float = 0.0, layers: int = 16, size: int = 20000, density: float = 0.3,
                     rho: float = 0.95, flip: float = 0.25, seeds=SEEDS):
    """Per seed: a start w_s (correlated across seeds through a common part), its magnitude mask M_s
    (magnitude_mask, as the stage computes it) and a ticket = M_s with `flip` of its kept entries
    swapped for pruned ones, independently per seed, or with `shared` of the swaps following one
    common pattern (structure the starts do not explain). Returns the stage's three tables."""
    g = torch.Generator().manual_seed(seed)
    names = _names(2, layers // 2 - 1)[:layers]
    k = int(density * size)
    starts, tickets, common = {s: {} for s in seeds}, {s: {} for s in seeds}, {}
    for n in names:
        common_start, common[n] = torch.randn(size, generator=g), torch.randn(size, generator=g)
        for s in seeds:
            starts[s][n] = rho * common_start + math.sqrt(1 - rho ** 2) * torch.randn(size, generator=g)
    own = {s: magnitude_mask(starts[s], dict.fromkeys(names, k)) for s in seeds}
    nflip = int(flip * k)
    nshared = int(shared * nflip)

    def pick(idx: torch.Tensor, score: torch.Tensor) -> torch.Tensor:
        """nflip of the positions idx: the nshared with the largest common score, the rest at random."""
        ranked = idx[torch.argsort(-score[idx])]
        rest = ranked[nshared:]
        return torch.cat([ranked[:nshared], rest[torch.randperm(len(rest), generator=g)[:nflip - nshared]]])

    for n in names:
        for s in seeds:
            m = own[s][n]
            t = m.clone()
            drop, add = pick(torch.nonzero(m).flatten(), common[n]), pick(torch.nonzero(~m).flatten(), common[n])
            t[drop], t[add] = False, True
            tickets[s][n] = t
    tickets = {s: Mask(t) for s, t in tickets.items()}
    w = {n: torch.ones(size) for n in names}
    pairs = list(itertools.combinations(seeds, 2))
    df = pd.concat([compare_tickets(tickets[a], tickets[b], w, w, names).assign(round=1, pair=pair_label(a, b))
                    for a, b in pairs], ignore_index=True)
    base = pd.DataFrame([(1, s, n, "kappa", v) for s in seeds for n, v in agreement(tickets[s], own[s]).items()],
                        columns=["round", "seed", "layer", "metric", "value"])
    start_pair = pd.DataFrame([(pair_label(a, b), 1, n, v) for a, b in pairs for n, v in agreement(own[a], own[b]).items()],
                              columns=["pair", "round", "layer", "value"])
    predicted = pd.DataFrame([(pair_label(a, b), 1, n, v) for a, b in pairs
                              for n, v in predicted_agreement(tickets[a], starts[a], tickets[b], starts[b], 20).items()],
                             columns=["pair", "round", "layer", "value"])
    return df, base, start_pair, predicted


def _magnitude(shared: float, seed: int):
    df, base, sp, pred = _magnitude_study(seed, shared=shared)
    s = summarize(df, "kappa", seeds=SEEDS, baseline=base, start_pair=sp, predicted=pred, baseline_source="theta_k",
                  resamples=999)
    return s, s["claims"]["beyond_magnitude"]


def test_magnitude_mask_plus_independent_flips_is_inconclusive_and_never_no_more_than():
    s, mag = _magnitude(0.0, seed=3)
    assert mag["available"] and mag["metric"] == "kappa" and mag["n_pairs"] == 3
    assert mag["observed_agreement"] > 0.2                   # the tickets do agree ...
    assert abs(mag["effect"]) < 0.005                        # ... as much as their starts predict
    assert mag["ci"][0] < 0 < mag["ci"][1] and mag["verdict"] == "inconclusive"
    assert mag["own_start_agreement"] > mag["observed_agreement"]  # the old null would have called it 'explained'
    assert mag["p_value"] > 0.05 and 0 < mag["layers_above"] < mag["layers"]
    assert set(mag["pairs"]) == {"1-2", "1-3", "2-3"} and all(abs(v) < 0.005 for v in mag["pairs"].values())
    assert "is inconclusive" in s["finding"]
    for banned in ("no more than", "explained", "can be explained", "more than their starting magnitudes predict ("):
        assert banned not in s["finding"], banned


def test_shared_structure_beyond_the_magnitudes_is_worded_more_than():
    s, mag = _magnitude(0.3, seed=4)
    assert mag["effect"] > 0.05 and mag["ci"][0] > 0 and mag["verdict"] == "more"
    assert mag["layers_above"] == mag["layers"] and all(v == mag["layers"] for v in mag["layers_above_by_pair"].values())
    assert mag["predicted_agreement"] < mag["observed_agreement"]
    assert mag["p_value"] < 0.01
    assert "the tickets agree more than their starting magnitudes predict" in s["finding"]


def test_magnitude_claim_needs_the_prediction():
    df, base, sp, _ = _magnitude_study(5, layers=4, size=2000)
    mag = summarize(df, "kappa", seeds=SEEDS, baseline=base, start_pair=sp, resamples=100)["claims"]["beyond_magnitude"]
    assert mag["available"] is False and "no prediction" in mag["baseline_source"]


@pytest.mark.parametrize("ci, words", [([-0.01, 0.02], "inconclusive"), ([0.0, 0.0], "inconclusive"),
                                       ([0.01, 0.03], "agree more than"), ([-0.03, -0.01], "agree less than"),
                                       (None, "inconclusive")])
def test_the_magnitude_sentence_follows_the_interval(ci, words):
    mag = {"available": True, "effect": 0.005 if ci is None else sum(ci) / 2, "ci": ci, "pairs": {"1-2": 0.0},
           "observed_agreement": 0.4, "predicted_agreement": 0.39, "layers_above": 20, "layers": 40, "p_value": 0.3}
    text = magnitude_sentence(mag)
    assert words in text and "no more than" not in text and "explained" not in text


def test_report_row_reads_the_new_fields_and_words_the_verdict():
    from pipeline.report.findings import beyond_magnitude_sentence, similarity_findings
    from pipeline.stats.verdicts import CONTRADICTED, INCONCLUSIVE, SUPPORTED

    s, _ = _magnitude(0.3, seed=4)
    rows = similarity_findings(s, "kappa")
    row = next(r for r in rows if "starting magnitudes" in r["claim"])
    mag = s["claims"]["beyond_magnitude"]
    assert row["verdict"] == SUPPORTED and row["effect"] == pytest.approx(mag["effect"])
    assert "3 ticket pairs" in row["read_at"] and any("data order" in n for n in row["notes"])
    assert f"above the prediction in {mag['layers']} of {mag['layers']} layers" in row["also"]
    assert "agree more than their starting magnitudes predict" in beyond_magnitude_sentence(rows)
    for ci, verdict, words in (([-0.01, 0.02], INCONCLUSIVE, "inconclusive"), ([-0.03, -0.01], CONTRADICTED,
                                                                                "agree less than")):
        shifted = {**s, "claims": {**s["claims"], "beyond_magnitude": {**mag, "ci": ci, "effect": sum(ci) / 2}}}
        rows = similarity_findings(shifted, "kappa")
        row = next(r for r in rows if "starting magnitudes" in r["claim"])
        sentence = beyond_magnitude_sentence(rows)
        assert row["verdict"] == verdict and words in sentence
        assert "no more" not in sentence and "explained" not in sentence
    up = next(r for r in similarity_findings(s, "kappa") if r["claim"].startswith("upstream blocks"))
    assert "per pair 1-2" in up["also"]
