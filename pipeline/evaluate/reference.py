"""The reference side of every FID: which extractor weights a FID is in (their sha256), the real
images' statistics written by the `reference` stage, and the floors a perfect generator scores."""
from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from pipeline.core import paths
from pipeline.core.config import ConfigError, Params
from pipeline.core.io import load_json, load_torch
from pipeline.evaluate.fid import fid_from_statistics, fid_statistics, kid
from pipeline.evaluate.intervals import Reference, fid_uncertainty
from pipeline.evaluate.inception_weights import INCEPTION_FID, verify_weights
from pipeline.evaluate.pinned import sha256_file


def data_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def extractor_digest(params: Params) -> str:
    """Full sha256 of the extractor's weights file, so stale reference statistics are caught and
    every FID names exactly the weights that produced it."""
    if params.eval.feature_extractor == "classifier":
        return sha256_file(paths.classifier_path())
    if params.eval.feature_extractor == INCEPTION_FID:
        return verify_weights()[1]
    if params.eval.inception_weights is not None:
        return sha256_file(params.eval.inception_weights)
    # the release file torch-fidelity downloaded into torch hub's cache (its name carries a hash)
    cached = Path(torch.hub.get_dir()) / "checkpoints" / "weights-inception-2015-12-05-6726825d.pth"
    return sha256_file(cached) if cached.is_file() else "torch-fidelity-release-6726825d"


def real_floor(params: Params, feats: torch.Tensor, stats: dict) -> dict:
    """FID/KID of `eval.num_samples` real images (a seeded subset) against the full reference, as
    eval compares samples: what a perfect generator scores, the floor every FID is read against."""
    n = min(params.eval.num_samples, len(feats))
    idx = torch.randperm(len(feats), generator=torch.Generator().manual_seed(params.eval.seed))[:n]
    kid_mean, kid_std = kid(feats, feats[idx], min(params.eval.kid_subset_size, n), seed=params.eval.seed)
    return {"floor_num_samples": n, "fid_real_floor": fid_from_statistics(stats, fid_statistics(feats[idx])),
            "kid_real_floor_mean": kid_mean, "kid_real_floor_std": kid_std}


def fid_interval(params: Params, ref: Reference, feats: torch.Tensor, device: torch.device | str | None = None):
    """FID with its interval and FID_inf, the matrix work on `device` (default: the CPU)."""
    ev = params.eval
    return fid_uncertainty(ref, feats, resamples=ev.fid_bootstrap, level=ev.fid_ci_level, inf_sizes=ev.fid_inf_sizes,
                           inf_subsets=ev.fid_inf_subsets, inf_min_fraction=ev.fid_inf_min_fraction,
                           inf_resamples=ev.fid_inf_bootstrap, seed=ev.seed, splits=ev.fid_splits, device=device)


def heldout_floor(params: Params, held_feats: torch.Tensor, stats: dict,
                  device: torch.device | str | None = None) -> dict:
    """FID of real images the reference has never seen (held-out split), up to eval.num_samples of
    them, with the same interval and FID_inf as every eval: what a perfect generator scores."""
    n = min(params.eval.num_samples, len(held_feats))
    if not 2 <= round(params.eval.fid_inf_min_fraction * n) < n:
        return {}  # too few held-out images for the FID_inf fit
    idx = torch.randperm(len(held_feats), generator=torch.Generator().manual_seed(params.eval.seed))[:n]
    spread = fid_interval(params, Reference.from_statistics(stats["mu"], stats["sigma"]), held_feats[idx], device)
    return {"heldout_floor_num_samples": n, "fid_heldout_floor": spread.fid,
            "fid_heldout_floor_ci": spread.fid_ci, "fid_inf_heldout_floor": spread.fid_inf,
            "fid_inf_heldout_floor_ci": spread.fid_inf_ci}


def load_reference(params: Params) -> tuple[dict, dict]:
    path = paths.reference_dir() / "reference.json"
    if not path.exists():
        raise ConfigError(f"{path} not found: run the 'reference' stage first (dvc repro reference)")
    info = load_json(path)
    want = (params.eval.feature_extractor, extractor_digest(params), params.data.dataset,
            params.data.image_size, params.data.channels)
    have = (info["feature_extractor"], info["extractor_sha256"], info["dataset"], info["image_size"], info["channels"])
    if want != have:
        raise ConfigError(f"{path} was computed for (extractor, weights, dataset, size, channels) = {have}, "
                          f"params ask for {want}: rerun the 'reference' stage")
    stats = load_torch(paths.reference_dir() / "stats.pt")
    return info, stats
