"""How sure a FID is: the interval for FID at N samples, the sample-size-free FID_inf of Chong &
Forsyth 2020 ("Effectively Unbiased FID and Inception Score and where to find them") with an interval
of its own, and the replicates a joint (paired) analysis across runs needs.

Both hold the reference statistics fixed (the reference is every real training image, computed
once) and resample only the generated side, which is what varies between evaluations.

**The interval for FID at N samples** estimates E[FID_N], the expected FID of N generated samples
(FID is biased upward at finite N, so this is not the population FID; FID_inf is). It is the FID ± z
· SD, truncated at 0, with SD² = mean_k e_k², e_k = (FID(A_k) − FID(B_k)) / 2 over random splits k
of the samples into disjoint halves A_k, B_k. Disjoint halves are independent samples of N/2, so
E[e_k²] = Var(FID_{N/2}) / 2, which is Var(FID_N) when the variance falls as 1/N and somewhat more
when it falls faster (the FID's quadratic noise falls as 1/N²): it errs wide, by 0-33 % in SD on the
Gaussians tested (at most sqrt(2) when the FID is pure quadratic noise, as at the real-image floor).
The bootstrap is not used for it: a resample with replacement holds only ~63 % distinct samples,
which biases the resampled FIDs upward (by about the FID's own finite-N bias) and inflates their
spread, 1.85x the true SD at 500 x 128 features near the reference. Its centred percentile interval
(the previous method) therefore covered E[FID_N] 100 % of the time; the basic interval 2·FID −
quantiles removes that bias and so targets the population FID instead (it covered E[FID_N] 0 % at
500 x 128 and 17 % on the 16-d calibration problem).

Replicates for joint analyses: bootstrap draw r and split k depend only on (seed, N, r) and
(seed, N, k). Sample i is the same starting noise x_T in every run with the same eval seed, so two
such runs' replicates are computed on the same resampled indices: the differences of their
replicates are replicates of the difference (pipeline.stats.paired, kinds 'bootstrap' and 'split').

Everything is batched matrix algebra on the (N, D) features: a resample is a row of multinomial
counts, its mean and covariance are two matrix products, and the Fréchet distance's trace term is
read from eigenvalues, tr sqrt(S_r S_g) = sum sqrt(eig(A S_g A)) with A = S_r^{1/2} symmetric (the
eigenvalues of S_r S_g and of A S_g A coincide). Hundreds of FIDs of 500 x 128 features then take a
fraction of a second on one core; at 10 k x 2048 (Inception) they run on the GPU when given one.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch

CI_METHOD = ("interval for FID at N samples (the expected FID of N samples, not the population FID): "
             "FID ± z·SD truncated at 0, SD from {splits} random splits of the generated samples into "
             "disjoint halves, SD² = mean ((FID(half 1) − FID(half 2)) / 2)²; reference statistics held fixed")
INF_METHOD = ("FID of random subsets (without replacement) at each size, least-squares fit "
              "FID_n = FID_inf + slope / n (Chong & Forsyth 2020); interval: the same fit on each "
              "bootstrap resample of the generated samples, percentile interval moved so the refits' mean "
              "sits on FID_inf, truncated at 0")
SPLIT_STREAM = 0x5EED_5B17  # the splits' own random stream, apart from the bootstrap's


@dataclass(frozen=True)
class Reference:
    """Fixed reference statistics, with the pieces the batched Fréchet distance reuses."""
    mu: torch.Tensor         # (D,) float64
    sigma: torch.Tensor      # (D, D) float64
    sqrt_sigma: torch.Tensor  # symmetric S_r^{1/2}
    trace: float

    @classmethod
    def from_statistics(cls, mu, sigma) -> "Reference":
        mu = torch.as_tensor(np.asarray(mu), dtype=torch.float64)
        sigma = torch.as_tensor(np.asarray(sigma), dtype=torch.float64)
        sigma = (sigma + sigma.T) / 2
        evals, evecs = torch.linalg.eigh(sigma)
        sqrt_sigma = (evecs * evals.clamp(min=0).sqrt()) @ evecs.T
        return cls(mu, sigma, sqrt_sigma, float(torch.trace(sigma)))

    def to(self, device: torch.device | str) -> "Reference":
        return Reference(self.mu.to(device), self.sigma.to(device), self.sqrt_sigma.to(device), self.trace)


@contextmanager
def _full_precision_matmul():
    """No TF32 in these products (a FID at 2048-d moves by far more than its interval otherwise)."""
    saved = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = saved


def frechet_distances(ref: Reference, features: torch.Tensor, weights: torch.Tensor,
                      chunk: int = 64, dtype: torch.dtype = torch.float64,
                      device: torch.device | str | None = None) -> torch.Tensor:
    """FID of each weighted version of `features` (N, D) against `ref`.

    `weights` (B, N) are non-negative counts: row b is a multiset of the N samples (a bootstrap
    resample, or a 0/1 subset indicator). The covariance is the unbiased one (divisor count - 1),
    as numpy's np.cov and torch-fidelity use. `dtype` is that of the D x D work (covariances and
    eigenvalues): float32 halves the time and moves a FID by ~1e-4, fine for resamples. `device`:
    where the matrix work runs (default: the CPU); a GPU does an eval's hundreds of 2048-d FIDs in
    about a minute instead of most of an hour on one CPU thread. Returns (B,) float64 on the CPU.
    """
    dev = torch.device("cpu") if device is None else torch.device(device)
    if dev.type != "cpu":
        ref = ref.to(dev)
    with _full_precision_matmul():
        return _frechet_distances(ref, features.to(dev, torch.float64), weights.to(dev, torch.float64),
                                  chunk, dtype).cpu()


def _frechet_distances(ref: Reference, x: torch.Tensor, w: torch.Tensor, chunk: int,
                       dtype: torch.dtype) -> torch.Tensor:
    n = w.sum(1)                                                 # (B,)
    # centre on the overall mean first: keeps the one-pass covariance numerically tame
    xc = x - x.mean(0)
    mu_c = (w @ xc) / n[:, None]                                 # (B, D) resample mean, centred
    diff = ((mu_c + x.mean(0) - ref.mu) ** 2).sum(1)
    trace_g = ((w @ xc.square()) - n[:, None] * mu_c.square()).sum(1) / (n - 1)
    # A S_g A with A = S_r^{1/2}, straight from the samples mapped through A
    y = (xc @ ref.sqrt_sigma).to(dtype)
    my = (mu_c @ ref.sqrt_sigma).to(dtype)
    trace_sqrt = torch.empty(len(w), dtype=torch.float64, device=x.device)
    for i in range(0, len(w), chunk):
        ws, nb, mb = w[i:i + chunk].to(dtype), n[i:i + chunk].to(dtype), my[i:i + chunk]
        yw = ws.sqrt()[:, :, None] * y                           # (b, N, D)
        inner = yw.transpose(1, 2) @ yw - nb[:, None, None] * mb[:, :, None] * mb[:, None, :]
        inner = inner / (nb - 1)[:, None, None]
        trace_sqrt[i:i + chunk] = torch.linalg.eigvalsh(inner).clamp(min=0).sqrt().sum(1)
    return diff + ref.trace + trace_g - 2 * trace_sqrt


def _bootstrap_counts(n: int, resamples: int, gen: torch.Generator) -> torch.Tensor:
    idx = torch.randint(0, n, (resamples, n), generator=gen)
    counts = torch.zeros(resamples, n, dtype=torch.float64)
    return counts.scatter_add_(1, idx, torch.ones(resamples, n, dtype=torch.float64))


def centred_interval(estimate: float, replicates: np.ndarray, level: float, floor: float = 0.0) -> list[float]:
    """The bootstrap's percentile interval, moved so that the replicates' mean sits on `estimate`,
    its lower end truncated at `floor` (a FID is never negative). Used for FID_inf, whose refits
    extrapolate away the duplicates' upward bias only in part; see the module docstring for why the
    FID at N does not use it."""
    lo, hi = np.quantile(replicates, [(1 - level) / 2, (1 + level) / 2])
    shift = float(np.mean(replicates)) - estimate
    return [max(float(lo - shift), floor), max(float(hi - shift), floor)]


def split_halves(n: int, splits: int, seed: int) -> torch.Tensor:
    """0/1 weights (splits, n) of the first halves A_k of `splits` random splits of n samples into
    two disjoint halves of n // 2 (with odd n one sample sits out); 2 marks the second half B_k.
    Split k depends only on (seed, n, k)."""
    state = int(np.random.SeedSequence([seed, SPLIT_STREAM]).generate_state(1)[0])
    gen = torch.Generator().manual_seed(state)
    half = n // 2
    out = torch.zeros(splits, n, dtype=torch.float64)
    for k in range(splits):
        perm = torch.randperm(n, generator=gen)
        out[k, perm[:half]] = 1.0
        out[k, perm[half:2 * half]] = 2.0
    return out


def split_errors(ref: Reference, features: torch.Tensor, splits: int, seed: int,
                 dtype: torch.dtype = torch.float32, device: torch.device | str | None = None) -> np.ndarray:
    """e_k = (FID(A_k) − FID(B_k)) / 2 for the splits of `split_halves`: zero-mean replicates of the
    FID's sampling error with E[e_k²] = Var(FID_{N/2}) / 2 (module docstring). (splits,) float64."""
    halves = split_halves(len(features), splits, seed)
    fids = frechet_distances(ref, features, torch.cat([(halves == 1).double(), (halves == 2).double()]), dtype=dtype,
                             device=device)
    return ((fids[:splits] - fids[splits:]) / 2).numpy()


def interval_at_n(fid: float, errors: np.ndarray, level: float) -> tuple[list[float], float]:
    """The interval for FID at N samples from split errors, and its SD: FID ± z · sqrt(mean e²),
    the lower end truncated at 0."""
    from scipy import stats

    sd = float(np.sqrt(np.mean(np.square(errors))))
    half = float(stats.norm.ppf(0.5 + level / 2)) * sd
    return [max(fid - half, 0.0), fid + half], sd


def subset_sizes(n: int, count: int, min_fraction: float) -> list[int]:
    """`count` distinct subset sizes from min_fraction * n to n, evenly spaced in 1/n (the fit's
    x axis), so the points spread evenly along the line."""
    lo = max(2, int(round(min_fraction * n)))
    inv = np.linspace(1.0 / lo, 1.0 / n, count)
    sizes = sorted({int(round(1.0 / v)) for v in inv})
    if len(sizes) < 2:
        raise ValueError(f"FID_inf needs at least two subset sizes; {n} samples at fraction {min_fraction} give {sizes}")
    return sizes


def _subset_weights(base: torch.Tensor, size: int, subsets: int, gen: torch.Generator) -> torch.Tensor:
    """0/1-per-draw weights of `subsets` random subsets of `size` draws, taken without replacement
    from the multiset `base` (N,) of counts (all ones: the samples themselves)."""
    pool = torch.repeat_interleave(torch.arange(len(base)), base.round().long())
    picks = torch.stack([pool[torch.randperm(len(pool), generator=gen)[:size]] for _ in range(subsets)])
    out = torch.zeros(subsets, len(base), dtype=torch.float64)
    return out.scatter_add_(1, picks, torch.ones_like(picks, dtype=torch.float64))


def _fit_intercepts(sizes: list[int], fids: np.ndarray) -> np.ndarray:
    """Least-squares intercepts of FID = a + b / n, one per row of `fids` (R, len(sizes))."""
    design = np.stack([np.ones(len(sizes)), 1.0 / np.asarray(sizes, dtype=np.float64)], 1)
    coef, *_ = np.linalg.lstsq(design, fids.T, rcond=None)
    return coef[0]


@dataclass(frozen=True)
class FidUncertainty:
    fid: float
    fid_ci: list[float]                 # the interval for FID at N samples (E[FID_N])
    fid_std: float                      # its SD (split estimate)
    fid_inf: float
    fid_inf_ci: list[float]
    fid_inf_sizes: list[int]
    bootstrap_std: float = float("nan")  # SD of the bootstrap replicates (inflated; for comparison)
    replicates: tuple = ()              # bootstrap FIDs, replicate r on draw r of (seed, N)
    split_errors: tuple = ()            # e_k of split k of (seed, N)

    def metrics(self, level: float, resamples: int) -> dict:
        """The metrics.json keys (interface 1 of the brief); `fid_bootstrap` stays the bootstrap count
        (the FID_inf refits and the replicates use it), `fid_splits` is new."""
        return {"fid_ci": self.fid_ci, "fid_std": self.fid_std, "fid_ci_level": level,
                "fid_bootstrap": resamples, "fid_splits": len(self.split_errors),
                "fid_bootstrap_std": self.bootstrap_std,
                "fid_ci_method": CI_METHOD.format(splits=len(self.split_errors), resamples=resamples),
                "fid_inf": self.fid_inf, "fid_inf_ci": self.fid_inf_ci, "fid_inf_sizes": self.fid_inf_sizes}

    def replicate_arrays(self) -> dict:
        """The joint replicates, for a file beside metrics.json: pipeline.stats.paired takes the
        per-seed rows of two runs with the same eval seed and N ('bootstrap' and 'split' kinds)."""
        return {"fid_bootstrap_replicates": list(self.replicates), "fid_split_errors": list(self.split_errors)}


def fid_uncertainty(ref: Reference, features: torch.Tensor, *, resamples: int, level: float,
                    inf_sizes: int, inf_subsets: int, inf_min_fraction: float, inf_resamples: int,
                    seed: int, splits: int = 100, device: torch.device | str | None = None) -> FidUncertainty:
    """FID of `features` against `ref`, the interval for FID at N samples and its SD (from `splits`
    half-splits), the bootstrap replicates, and FID_inf with its interval.

    FID_inf: at each of `inf_sizes` subset sizes the mean FID of `inf_subsets` random subsets, a
    least-squares line in 1/n, its intercept. Its interval repeats that on `inf_resamples` of the
    bootstrap resamples (subsets drawn from each resample). `device`: where the Fréchet distances
    are computed (see `frechet_distances`); the random draws stay on the CPU, so they are the same
    on every device.
    """
    n = len(features)
    gen = torch.Generator().manual_seed(seed)
    full = frechet_distances(ref, features, torch.ones(1, n, dtype=torch.float64), device=device)[0].item()
    counts = _bootstrap_counts(n, resamples, gen)
    boot = frechet_distances(ref, features, counts, dtype=torch.float32, device=device).numpy()
    errors = split_errors(ref, features, splits, seed, device=device)
    fid_ci, fid_sd = interval_at_n(full, errors, level)

    sizes = subset_sizes(n, inf_sizes, inf_min_fraction)

    # row 0: the samples themselves; rows 1..: the first inf_resamples bootstrap resamples
    bases = torch.cat([torch.ones(1, n, dtype=torch.float64), counts[:inf_resamples]])
    weights = torch.cat([_subset_weights(base, s, inf_subsets, gen) for base in bases for s in sizes])
    fids = frechet_distances(ref, features, weights, dtype=torch.float32, device=device).numpy()
    intercepts = _fit_intercepts(sizes, fids.reshape(len(bases), len(sizes), inf_subsets).mean(2))
    fid_inf, boot_inf = float(intercepts[0]), intercepts[1:]
    return FidUncertainty(fid=full, fid_ci=fid_ci, fid_std=fid_sd,
                          fid_inf=fid_inf, fid_inf_ci=centred_interval(fid_inf, boot_inf, level),
                          fid_inf_sizes=sizes, bootstrap_std=float(boot.std(ddof=1)),
                          replicates=tuple(float(x) for x in boot), split_errors=tuple(float(x) for x in errors))
