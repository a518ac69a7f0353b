"""The FID interval and the sample-size-free FID_inf, against Gaussians whose Fréchet distance is
known in closed form."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch
from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_features_to_statistics, fid_statistics_to_metric

from pipeline.evaluate.intervals import (Reference, _bootstrap_counts, centred_interval, fid_uncertainty, frechet_distances,
                                           interval_at_n, split_errors, split_halves, subset_sizes)


def gaussian_pair(d: int, seed: int = 0):
    """Population statistics of a reference and a generator Gaussian, and their exact distance."""
    gen = torch.Generator().manual_seed(seed)
    a = torch.randn(d, d, generator=gen, dtype=torch.float64) / d**0.5
    b = a + 0.3 * torch.randn(d, d, generator=gen, dtype=torch.float64) / d**0.5
    mu = 0.1 * torch.randn(d, generator=gen, dtype=torch.float64)
    s1, s2 = (a @ a.T).numpy(), (b @ b.T).numpy()
    exact = float(mu @ mu + np.trace(s1) + np.trace(s2) - 2 * np.trace(scipy.linalg.sqrtm(s1 @ s2).real))
    return Reference.from_statistics(np.zeros(d), s1), (b, mu), exact


def draw(generator_params, n: int, gen: torch.Generator) -> torch.Tensor:
    b, mu = generator_params
    return (torch.randn(n, len(mu), generator=gen, dtype=torch.float64) @ b.T + mu).float()


@pytest.mark.parametrize("n, d, seed", [(300, 16, 0), (120, 40, 1), (64, 8, 2)])
def test_batched_frechet_distance_equals_torch_fidelity(n, d, seed):
    gen = torch.Generator().manual_seed(seed)
    real = torch.randn(2 * n, d, generator=gen) @ torch.randn(d, d, generator=gen) / d**0.5
    fake = torch.randn(n, d, generator=gen) + 0.2
    real_stats = fid_features_to_statistics(real)
    ref = Reference.from_statistics(real_stats["mu"], real_stats["sigma"])
    # each row a multiset: all samples once, a bootstrap draw, a subset
    idx = torch.randint(0, n, (n,), generator=gen)
    subset = torch.randperm(n, generator=gen)[: n // 2]
    weights = torch.stack([torch.ones(n), torch.bincount(idx, minlength=n).double(),
                           torch.zeros(n).index_fill_(0, subset, 1.0)])
    ours = frechet_distances(ref, fake, weights)
    single = frechet_distances(ref, fake, weights, dtype=torch.float32)
    assert torch.allclose(single, ours, rtol=1e-4, atol=1e-4)
    for row, picked in zip(ours, (fake, fake[idx], fake[subset])):
        theirs = fid_statistics_to_metric(real_stats, fid_features_to_statistics(picked), verbose=False)[KEY_METRIC_FID]
        assert float(row) == pytest.approx(float(theirs), rel=1e-6, abs=1e-8)


def test_subset_sizes_spread_along_one_over_n():
    sizes = subset_sizes(500, 5, 0.5)
    assert sizes[0] == 250 and sizes[-1] == 500 and len(sizes) == 5
    steps = np.diff(1.0 / np.array(sizes))
    assert np.allclose(steps, steps[0], rtol=0.05)


def test_interval_and_extrapolation_recover_known_gaussian_distances():
    """At 500 samples of 128-d features (the default study's shape) FID is biased upward by several
    points; the interval covers the expected finite-N FID, the extrapolation recovers the exact
    N -> infinity distance, and its interval covers it."""
    ref, gen_params, exact = gaussian_pair(128)
    n = 500
    gen = torch.Generator().manual_seed(7)
    # the expected FID at this N, from independent draws of the generator
    expected_n = np.mean([frechet_distances(ref, draw(gen_params, n, gen), torch.ones(1, n))[0].item()
                          for _ in range(12)])
    assert expected_n > exact + 3.0  # the finite-N bias the extrapolation must remove

    for trial in range(3):
        features = draw(gen_params, n, gen)
        u = fid_uncertainty(ref, features, resamples=300, level=0.95, inf_sizes=5, inf_subsets=4,
                            inf_min_fraction=0.5, inf_resamples=40, seed=trial)
        assert u.fid > exact + 3.0
        assert u.fid_ci[0] <= u.fid <= u.fid_ci[1]
        assert u.fid_ci[0] <= expected_n <= u.fid_ci[1]
        assert u.fid_ci[0] > exact  # the finite-N interval does not describe the N -> inf value...
        assert abs(u.fid_inf - exact) < 0.15 * exact  # ...the extrapolation does
        assert u.fid_inf_ci[0] <= exact <= u.fid_inf_ci[1]
        assert 0 < u.fid_std < 2.0
        assert u.fid_inf_sizes == subset_sizes(n, 5, 0.5)


def test_interval_narrows_with_more_samples_and_is_seeded():
    ref, gen_params, _ = gaussian_pair(16, seed=3)
    gen = torch.Generator().manual_seed(0)
    kw = dict(resamples=200, level=0.95, inf_sizes=4, inf_subsets=3, inf_min_fraction=0.5, inf_resamples=30)
    small, large = draw(gen_params, 200, gen), draw(gen_params, 3200, gen)
    u_small, u_large = fid_uncertainty(ref, small, seed=1, **kw), fid_uncertainty(ref, large, seed=1, **kw)
    assert u_large.fid_std < u_small.fid_std / 2  # ~1/sqrt(N): 16x the samples, ~4x narrower
    assert fid_uncertainty(ref, small, seed=1, **kw) == u_small
    assert fid_uncertainty(ref, small, seed=2, **kw).fid_ci != u_small.fid_ci
    level_90 = fid_uncertainty(ref, small, seed=1, **{**kw, "level": 0.9})
    assert u_small.fid_ci[0] < level_90.fid_ci[0] < level_90.fid_ci[1] < u_small.fid_ci[1]


@pytest.mark.parametrize("over, key", [({"fid_inf_bootstrap": 600}, "fid_inf_bootstrap"),
                                       ({"fid_inf_min_fraction": 1.0}, "fid_inf_min_fraction"),
                                       ({"num_samples": 2, "kid_subset_size": 2}, "fid_inf_min_fraction"),
                                       ({"fid_ci_level": 1.5}, "fid_ci_level"),
                                       ({"fid_bootstrap": 5}, "fid_bootstrap")])
def test_bad_uncertainty_params_are_one_line_errors(over, key):
    from pipeline.app.params import parse_params
    from pipeline.core.config import ConfigError

    with pytest.raises(ConfigError, match=key) as err:
        parse_params({"eval": over})
    assert "\n" not in str(err.value)


def test_split_halves_are_disjoint_and_depend_only_on_seed_n_and_k():
    h = split_halves(101, 6, seed=3)
    assert ((h == 1).sum(1) == 50).all() and ((h == 2).sum(1) == 50).all()  # one sample sits out
    assert torch.equal(split_halves(101, 3, seed=3), h[:3])
    assert not torch.equal(split_halves(101, 3, seed=4), h[:3])


def test_replicates_of_two_runs_resample_the_same_indices():
    """What a joint (paired) analysis needs: with the same eval seed and N, bootstrap replicate r and
    split k of any two runs are computed on the same sample indices (sample i being the same x_T)."""
    ref, gen_params, _ = gaussian_pair(16, seed=3)
    gen = torch.Generator().manual_seed(5)
    run_a, run_b = draw(gen_params, 120, gen), draw(gen_params, 120, gen) + 0.1
    kw = dict(resamples=60, level=0.95, inf_sizes=2, inf_subsets=1, inf_min_fraction=0.5, inf_resamples=10,
              seed=9, splits=20)
    ua, ub = fid_uncertainty(ref, run_a, **kw), fid_uncertainty(ref, run_b, **kw)
    counts = _bootstrap_counts(120, 60, torch.Generator().manual_seed(9))
    for feats, u in ((run_a, ua), (run_b, ub)):
        again = frechet_distances(ref, feats, counts[:5], dtype=torch.float32).numpy()
        assert np.allclose(u.replicates[:5], again, rtol=1e-5)
        assert np.allclose(u.split_errors, split_errors(ref, feats, 20, seed=9), rtol=1e-5)
    assert len(ua.replicates) == 60 and len(ua.split_errors) == 20
    assert ua.fid_std == pytest.approx(np.sqrt(np.mean(np.square(ua.split_errors))))
    assert ua.bootstrap_std == pytest.approx(np.std(ua.replicates, ddof=1), rel=1e-6)
    m = ua.metrics(0.95, 60)
    assert {"fid_ci", "fid_std", "fid_ci_level", "fid_bootstrap", "fid_ci_method", "fid_inf", "fid_inf_ci",
            "fid_inf_sizes", "fid_splits", "fid_bootstrap_std"} == set(m) and m["fid_splits"] == 20
    assert "FID at N samples" in m["fid_ci_method"]
    assert set(ua.replicate_arrays()) == {"fid_bootstrap_replicates", "fid_split_errors"}


def test_interval_at_n_is_truncated_at_zero():
    (lo, hi), sd = interval_at_n(0.3, np.array([1.0, -1.0, 1.0, -1.0]), 0.95)
    assert sd == 1.0 and lo == 0.0 and hi == pytest.approx(0.3 + 1.959964, abs=1e-6)
    assert centred_interval(0.1, np.array([2.0, 2.5, 3.0, 10.0]), 0.95)[0] == 0.0


def _uncertainty(ref, feats, device=None):
    return fid_uncertainty(ref, feats, resamples=20, level=0.9, inf_sizes=3, inf_subsets=4, inf_min_fraction=0.5,
                           inf_resamples=5, seed=3, splits=10, device=device)


def test_intervals_on_a_named_device_equal_the_default_and_every_distance_goes_there(monkeypatch):
    """device='cpu' is the default path, byte for byte; the device reaches every Fréchet distance
    (on a GPU node that puts an eval's hundreds of 2048-d matrix problems on the GPU)."""
    import pipeline.evaluate.intervals as intervals

    ref, generator_params, _ = gaussian_pair(12, seed=4)
    feats = draw(generator_params, 90, torch.Generator().manual_seed(5))
    default = _uncertainty(ref, feats)
    seen = []
    inner = intervals._frechet_distances
    monkeypatch.setattr(intervals, "_frechet_distances", lambda r, x, w, *a: seen.append((x.device, w.device, r.mu.device))
                        or inner(r, x, w, *a))
    named = _uncertainty(ref, feats, device="cpu")
    assert named == default
    assert len(seen) == 4 and set(seen) == {(torch.device("cpu"),) * 3}, "full, bootstrap, splits, FID_inf refits"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_intervals_on_cuda_equal_the_cpu_result_to_float_tolerance():
    ref, generator_params, _ = gaussian_pair(64, seed=6)
    feats = draw(generator_params, 400, torch.Generator().manual_seed(7))
    cpu, cuda = _uncertainty(ref, feats), _uncertainty(ref, feats, device="cuda")
    assert cuda.fid == pytest.approx(cpu.fid, rel=1e-9)
    np.testing.assert_allclose(cuda.replicates, cpu.replicates, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(cuda.split_errors, cpu.split_errors, rtol=1e-3, atol=1e-4)
    assert cuda.fid_inf == pytest.approx(cpu.fid_inf, rel=1e-4, abs=1e-4)
    np.testing.assert_allclose(cuda.fid_ci, cpu.fid_ci, rtol=1e-4, atol=1e-4)
