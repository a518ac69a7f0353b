"""Calibration: on synthetic problems with a known truth each 95 % interval covers it at 90-99 % over
400 trials (binomial SE ~1.1 %), and the formulas these replace do not.

(a) ΔFID over seeds: two runs per seed, features mapped from starting noise shared by every run and
    seed (common random numbers), plus a seed effect and per-run noise; the truth is the population
    mean of E[FID_N(a) − FID_N(b)], by Monte Carlo.
(b) FID at N samples on Gaussian features: the truth is E[FID_N], by Monte Carlo.
(c) The held-out loss difference, paired per item and over seeds.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.evaluate.intervals import Reference, fid_uncertainty, frechet_distances, split_halves
from pipeline.stats.paired import paired, paired_items_over_seeds
from pipeline.report.fid_intervals import seed_mean_ci

TRIALS = 400
LEVEL = 0.95


def coverage(intervals, truth) -> float:
    """Share of intervals holding the truth (one number, or one per trial)."""
    lo, hi = np.asarray(intervals, dtype=np.float64).T
    return float(np.mean((lo <= truth) & (truth <= hi)))


# -- (a) paired ΔFID over seeds ------------------------------------------------------------------
D, N, SPLITS, BOOT = 8, 100, 40, 50


class PairedFidWorld:
    """Reference N(0, A Aᵀ); run r of seed s maps the shared noise z (N, D) to features
    (z + TAU ε) B_rᵀ + m_r + δ_{r,s}, ε per-run sample noise, δ ~ N(0, SEED_SD² I) the seed effect."""
    TAU, SEED_SD = 0.3, 0.05

    def __init__(self):
        g = np.random.default_rng(0)
        a = g.normal(size=(D, D)) / D ** 0.5
        self.sigma_r = a @ a.T
        evals, evecs = np.linalg.eigh(self.sigma_r)
        self.sqrt_r = (evecs * np.sqrt(evals)) @ evecs.T
        self.runs = {"a": (a + 0.35 * g.normal(size=(D, D)) / D ** 0.5, 0.15 * g.normal(size=D)),
                     "b": (a + 0.30 * g.normal(size=(D, D)) / D ** 0.5, 0.10 * g.normal(size=D))}

    def features(self, run: str, z: np.ndarray, rng) -> np.ndarray:
        b, m = self.runs[run]
        return (z + self.TAU * rng.normal(size=z.shape)) @ b.T + m + self.SEED_SD * rng.normal(size=(len(z), 1, D))

    def fid(self, x: np.ndarray, w: np.ndarray) -> np.ndarray:
        """FID of each weighting w (B, N) of each feature set x (T, N, D): (T, B), the algebra of
        pipeline.evaluate.intervals.frechet_distances batched over feature sets."""
        nb = w.sum(1)
        mean = np.einsum("bn,tnd->tbd", w, x) / nb[:, None]
        y, my = x @ self.sqrt_r, mean @ self.sqrt_r
        outer = (y[..., :, None] * y[..., None, :]).reshape(*x.shape[:2], D * D)
        second = (w[None] @ outer).reshape(len(x), len(w), D, D)
        cov_y = (second - nb[None, :, None, None] * my[..., :, None] * my[..., None, :]) / (nb - 1)[None, :, None, None]
        trace_g = ((w[None] @ (x ** 2).sum(-1)[..., None])[..., 0] - nb * (mean ** 2).sum(-1)) / (nb - 1)
        trace_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh(cov_y), 0, None)).sum(-1)
        return (mean ** 2).sum(-1) + np.trace(self.sigma_r) + trace_g - 2 * trace_sqrt


@pytest.fixture(scope="module")
def fid_world():
    world = PairedFidWorld()
    rng = np.random.default_rng(1)
    z = rng.normal(size=(4000, N, D))
    one = np.ones((1, N))
    diff = world.fid(world.features("a", z, rng), one)[:, 0] - world.fid(world.features("b", z, rng), one)[:, 0]
    return world, float(diff.mean())  # MC error ~0.0025, next to half-widths ~0.25


def test_batched_fid_of_the_test_is_the_pipelines():
    world = PairedFidWorld()
    rng = np.random.default_rng(2)
    x = world.features("a", rng.normal(size=(2, N, D)), rng)
    w = np.stack([np.ones(N), np.bincount(rng.integers(0, N, N), minlength=N)]).astype(float)
    ref = Reference.from_statistics(np.zeros(D), world.sigma_r)
    for t in range(2):
        ours = frechet_distances(ref, torch.from_numpy(x[t]), torch.from_numpy(w)).numpy()
        assert world.fid(x, w)[t] == pytest.approx(ours, rel=1e-9, abs=1e-9)


def paired_fid_trials(world, seeds: int):
    """Per trial: each run's FID, split errors and bootstrap replicates for every seed, on the same
    shared noise and the same index draws (pipeline.evaluate.intervals.split_halves) in every run and seed."""
    rng = np.random.default_rng(10 + seeds)
    halves = split_halves(N, SPLITS, seed=0).numpy()
    boot = np.stack([np.bincount(rng.integers(0, N, N), minlength=N) for _ in range(BOOT)]).astype(float)
    w = np.concatenate([np.ones((1, N)), halves == 1, halves == 2, boot])
    z = rng.normal(size=(TRIALS, N, D))
    out = {}
    for run in ("a", "b"):
        f = np.stack([world.fid(world.features(run, z, rng), w) for _ in range(seeds)], 1)  # (T, seeds, W)
        out[run] = (f[..., 0], (f[..., 1:1 + SPLITS] - f[..., 1 + SPLITS:1 + 2 * SPLITS]) / 2, f[..., 1 + 2 * SPLITS:])
    return out


@pytest.mark.parametrize("seeds", [3, 8])
def test_paired_fid_difference_covers_and_the_old_formulas_do_not(fid_world, seeds):
    world, truth = fid_world
    runs = paired_fid_trials(world, seeds)
    (fa, ea, ba), (fb, eb, bb) = runs["a"], runs["b"]
    new = [paired(fa[t], fb[t], ea[t], eb[t], kind="split", level=LEVEL).ci for t in range(TRIALS)]
    boot = [paired(fa[t], fb[t], ba[t], bb[t], kind="bootstrap", level=LEVEL).ci for t in range(TRIALS)]
    plain = [paired(fa[t], fb[t], level=LEVEL).ci for t in range(TRIALS)]
    # the superseded formula: per-seed differences with each run's own bootstrap SD, sqrt(b_a² + b_b²)
    old = [seed_mean_ci((fa[t] - fb[t]).tolist(), np.hypot(ba[t].std(1, ddof=1), bb[t].std(1, ddof=1)).tolist(),
                        LEVEL).ci for t in range(TRIALS)]
    cov_new, cov_boot, cov_plain, cov_old = (coverage(x, truth) for x in (new, boot, plain, old))
    print(f"ΔFID, {seeds} seeds: coverage split {cov_new:.3f}, joint bootstrap {cov_boot:.3f}, plain t {cov_plain:.3f}, "
          f"old seed_mean_ci {cov_old:.3f}")  # shown with pytest -rP
    # n − 1 df over 3 seeds is conservative when the shared-noise term dominates (tests/stats/test_df_calibration.py)
    top = 1.0 if seeds == 3 else 0.99
    assert 0.90 <= cov_new <= top, cov_new
    assert 0.90 <= cov_boot <= top, cov_boot
    # a plain paired t on d_s misses the shared-noise term c > 0
    assert cov_plain < 0.88, cov_plain
    if seeds == 3:
        # independent-samples variances sqrt(b_a² + b_b²) over-cover; with n − 1 df on both formulas their
        # widths are no longer compared here (the split interval is itself conservative at 3 seeds)
        assert cov_old > 0.99, cov_old


# -- (b) FID at N samples ------------------------------------------------------------------------
def test_fid_interval_covers_the_expected_fid_at_n():
    """Gaussians near the reference (16-d, N = 100): FID's finite-N bias (~0.6) is several SDs, and
    resampling with replacement inflates the bootstrap SD ~1.4x, so the previous centred percentile
    interval covers E[FID_N] ~100 % and the basic interval covers it ~0 %."""
    d, n = 16, 100
    g = torch.Generator().manual_seed(0)
    a = torch.randn(d, d, generator=g, dtype=torch.float64) / d ** 0.5
    b = a + 0.3 * torch.randn(d, d, generator=g, dtype=torch.float64) / d ** 0.5
    mu = 0.05 * torch.randn(d, generator=g, dtype=torch.float64)
    ref = Reference.from_statistics(np.zeros(d), (a @ a.T).numpy())
    gen = torch.Generator().manual_seed(1)
    draws = torch.randn(3000, n, d, generator=gen, dtype=torch.float64) @ b.T + mu
    expected = float(np.mean([frechet_distances(ref, x, torch.ones(1, n))[0].item() for x in draws]))
    cis, fids = [], []
    for t in range(TRIALS):
        f = torch.randn(n, d, generator=gen, dtype=torch.float64) @ b.T + mu
        u = fid_uncertainty(ref, f, resamples=100, level=LEVEL, inf_sizes=2, inf_subsets=1, inf_min_fraction=0.5,
                            inf_resamples=1, seed=t, splits=50)
        cis.append(u.fid_ci)
        fids.append(u.fid)
    cov = coverage(cis, expected)
    # its SD is near the true SD of FID at N (it errs wide, a little)
    ratio = np.sqrt(np.mean([((hi - f) / 1.959964) ** 2 for (_, hi), f in zip(cis, fids)])) / np.std(fids, ddof=1)
    print(f"FID at N: coverage of E[FID_N] {cov:.3f}, SD ratio {ratio:.2f}")
    assert 0.90 <= cov <= 0.99, cov
    assert min(lo for lo, _ in cis) >= 0.0
    assert 0.95 < ratio < 1.35, ratio


# -- (c) held-out loss ---------------------------------------------------------------------------
@pytest.mark.parametrize("seeds", [1, 3, 8])
def test_heldout_loss_difference_paired_per_item_covers(seeds):
    """Per-item loss = item difficulty (shared by every run and seed) + run effect + seed effect +
    run x item effect (shared across seeds: the shared-noise term) + per-evaluation noise. Truth: the
    run effect β (one seed: β plus that seed's effect, the only thing one seed can speak to)."""
    m, beta = 512, 0.004
    rng = np.random.default_rng(20 + seeds)
    difficulty = rng.gamma(2.0, 0.04, (TRIALS, 1, m))
    h_a, h_b = rng.normal(0, 0.01, (2, TRIALS, 1, m))
    u = rng.normal(0, 0.001, (2, TRIALS, seeds, 1))
    loss_a = difficulty + beta + u[0] + h_a + rng.normal(0, 0.01, (TRIALS, seeds, m))
    loss_b = difficulty + u[1] + h_b + rng.normal(0, 0.01, (TRIALS, seeds, m))
    new = [paired_items_over_seeds(loss_a[t], loss_b[t], level=LEVEL).ci for t in range(TRIALS)]
    se = lambda x: (x.std(1, ddof=1) / np.sqrt(m)).tolist()
    # the superseded formula: per-seed differences, each run's own SE added as if independent
    old = [seed_mean_ci((loss_a[t].mean(1) - loss_b[t].mean(1)).tolist(),
                        np.hypot(se(loss_a[t]), se(loss_b[t])).tolist(), LEVEL).ci for t in range(TRIALS)]
    # one seed measures no seed variation: its interval is for that seed's own difference
    truth = beta + (u[0] - u[1])[:, 0, 0] if seeds == 1 else beta
    cov_new, cov_old = coverage(new, truth), coverage(old, truth)
    print(f"held-out loss, {seeds} seeds: coverage paired {cov_new:.3f}, old unpaired {cov_old:.3f}")
    assert 0.90 <= cov_new <= (1.0 if seeds == 3 else 0.99), cov_new  # n − 1 df: conservative at 3 seeds
    if seeds <= 3:
        # unpaired: the item difficulty both runs share counts as noise
        width = lambda cis: np.median([hi - lo for lo, hi in cis])
        assert cov_old > 0.99 and width(old) > 2 * width(new), (cov_old, width(old), width(new))
