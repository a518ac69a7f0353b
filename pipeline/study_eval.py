"""The evaluation stages of the study: features (the offline FID classifier), reference (features
of every real training image, computed once), eval (sample a ticket, FID/KID, held-out loss, cost).

The files under stages/ only parse their arguments and call one function here.
"""
from __future__ import annotations

import hashlib
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from . import artifacts as A
from .config import ConfigError, Params
from .cost import count_macs, save_compressed_ticket, torch_save_bytes
from .data import load_dataset, load_uint8, to_uint8
from .diffusion import Diffusion, sample_images
from .evaluation import fid_from_statistics, fid_statistics, heldout_loss, heldout_set, kid
from .features import classifier_state, extract_features, make_extractor, train_classifier
from .images import save_grid
from .io import load_json, load_torch, save_json, save_torch
from .masks import Mask
from .training import configure_threads, pick_device

GRID_IMAGES = 64


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def _extractor_digest(params: Params) -> str:
    """Identifies the extractor's weights, so stale reference statistics are caught."""
    if params.eval.feature_extractor == "classifier":
        return _sha256(A.classifier_path().read_bytes())
    if params.eval.inception_weights is None:
        return "torch-fidelity-release-6726825d"  # the release file name carries its hash
    return _sha256(Path(params.eval.inception_weights).read_bytes())


# -- features -------------------------------------------------------------------------------------
def run_features(params: Params) -> None:
    torch.set_num_threads(params.train.threads)  # a small CNN: CPU is enough, even next to a GPU
    images, labels = load_uint8(params.data)
    result = train_classifier(images, labels, params.features)
    save_torch(classifier_state(result.net), A.classifier_path())
    report = {"dataset": params.data.dataset, "threads": params.train.threads, **result.report}
    save_json(report, A.features_dir() / "features.json")
    acc = report["holdout_accuracy"]
    tqdm.write(f"features: classifier ({report['parameters']:,} params) trained {report['steps']} steps in "
               f"{report['train_seconds']:.1f} s; held-out accuracy "
               f"{'n/a' if acc is None else f'{acc:.1%}'} on {report['holdout']} images -> {A.classifier_path()}")


# -- reference ------------------------------------------------------------------------------------
def run_reference(params: Params) -> None:
    configure_threads(params.train.threads)
    extractor = make_extractor(params, A.classifier_path())
    images, _ = load_uint8(params.data)
    start = time.perf_counter()
    feats = extract_features(extractor, images, params.eval.batch_size, progress=True)
    stats = fid_statistics(feats)
    floor = _real_floor(params, feats, stats)
    save_torch({"features": feats, "mu": torch.from_numpy(stats["mu"]), "sigma": torch.from_numpy(stats["sigma"])},
               A.reference_dir() / "stats.pt")
    info = {"feature_extractor": extractor.name, "feature_layer": extractor.layer,
            "feature_dim": int(feats.shape[1]), "num_images": len(images), "dataset": params.data.dataset,
            "image_size": params.data.image_size, "channels": params.data.channels,
            "data_sha256": _sha256(images.numpy().tobytes()), "extractor_sha256": _extractor_digest(params),
            **floor}  # no timings: eval depends on this file, so it must be byte-stable
    save_json(info, A.reference_dir() / "reference.json")
    tqdm.write(f"reference: {extractor.name} features ({info['feature_dim']}-d) of all {len(images):,} "
               f"training images in {time.perf_counter() - start:.1f} s -> {A.reference_dir()}; a perfect generator's "
               f"FID at {floor['floor_num_samples']} samples: {floor['fid_real_floor']:.2f}")


def _real_floor(params: Params, feats: torch.Tensor, stats: dict) -> dict:
    """FID/KID of `eval.num_samples` real images (a seeded subset) against the full reference, as
    eval compares samples: what a perfect generator scores, the floor every FID is read against."""
    n = min(params.eval.num_samples, len(feats))
    idx = torch.randperm(len(feats), generator=torch.Generator().manual_seed(params.eval.seed))[:n]
    kid_mean, kid_std = kid(feats, feats[idx], min(params.eval.kid_subset_size, n), seed=params.eval.seed)
    return {"floor_num_samples": n, "fid_real_floor": fid_from_statistics(stats, fid_statistics(feats[idx])),
            "kid_real_floor_mean": kid_mean, "kid_real_floor_std": kid_std}


def _load_reference(params: Params) -> tuple[dict, dict]:
    path = A.reference_dir() / "reference.json"
    if not path.exists():
        raise ConfigError(f"{path} not found: run the 'reference' stage first (dvc repro reference)")
    info = load_json(path)
    want = (params.eval.feature_extractor, _extractor_digest(params), params.data.dataset,
            params.data.image_size, params.data.channels)
    have = (info["feature_extractor"], info["extractor_sha256"], info["dataset"], info["image_size"], info["channels"])
    if want != have:
        raise ConfigError(f"{path} was computed for (extractor, weights, dataset, size, channels) = {have}, "
                          f"params ask for {want}: rerun the 'reference' stage")
    stats = load_torch(A.reference_dir() / "stats.pt")
    return info, stats


# -- eval -----------------------------------------------------------------------------------------
def ticket_counts(params: Params, model: torch.nn.Module, mask: Mask | None) -> dict[str, int | float]:
    """Sparsity and parameter counts of a ticket (the dense net: nothing pruned)."""
    prunable = mask if mask is not None else Mask.dense(model, params.sparsity.include, params.sparsity.exclude)
    total, kept = prunable.total(), (prunable.kept() if mask is not None else prunable.total())
    params_total = sum(p.numel() for p in model.parameters())
    return {"sparsity": 1.0 - kept / total, "prunable_total": total, "prunable_kept": kept,
            "params_total": params_total, "params_kept": params_total - (total - kept)}


def run_eval_control(params: Params, kind: str, seed: int, k: int) -> None:
    """Evaluate the `kind` control of seed `seed`'s round-k ticket exactly like a ticket."""
    run_eval(params, seed, k, control=kind)


def run_eval(params: Params, seed: int, k: int, control: str | None = None) -> None:
    """FID/KID, held-out loss and cost of seed `seed`'s round-k net (k = 0: dense), or of its
    `control` (reinit | random) when given. Reads no imp.* param (a missing net is reported below),
    so adding IMP rounds leaves the existing evals alone."""
    start = time.perf_counter()
    configure_threads(params.train.threads)
    device = pick_device()
    ticket = (A.control_train_dir(control, seed, k) if control else A.train_dir(seed, k)) / "model.pt"
    if not ticket.exists():
        raise ConfigError(f"{ticket} not found: train {control or 'round'} {k} of seed {seed} first")
    # fail fast on a missing extractor or stale reference, before minutes of sampling
    extractor = make_extractor(params, A.classifier_path())
    _, ref = _load_reference(params)

    _, ema, mask, _ = A.load_ticket(ticket, params, device)
    out = A.control_eval_dir(control, seed, k) if control else A.eval_dir(seed, k)
    shape = (params.data.channels, params.data.image_size, params.data.image_size)
    counts = ticket_counts(params, ema, mask)
    macs_dense, macs = count_macs(ema, mask, (1, *shape), (torch.zeros(1, dtype=torch.long, device=device),))
    storage = save_compressed_ticket(ema.state_dict(), mask, out / "ticket.bin")
    storage_dense = torch_save_bytes(ema.state_dict())

    diffusion = Diffusion(params.diffusion, device)
    held = heldout_set(load_dataset(params.data), params.eval.heldout_size, diffusion.timesteps, params.eval.seed)
    loss = heldout_loss(diffusion, ema, held, params.eval.batch_size)

    samples = sample_images(diffusion, ema, params.eval.num_samples, shape, params.eval.sampling_steps,
                            batch_size=params.eval.batch_size, seed=params.eval.seed, progress=True)
    save_grid(samples[:GRID_IMAGES], out / "samples.png")
    feats = extract_features(extractor, to_uint8(samples), params.eval.batch_size)
    ref_stats = {"mu": ref["mu"].numpy(), "sigma": ref["sigma"].numpy()}
    fid = fid_from_statistics(ref_stats, fid_statistics(feats))
    kid_mean, kid_std = kid(ref["features"], feats, params.eval.kid_subset_size, seed=params.eval.seed)

    kind = control or ("ticket" if k else "dense")
    rewind = ("reinit" if control == "reinit" else params.rewind.mode) if k else "none"
    metrics = {"seed": seed, "round": k, "kind": kind, "rewind": rewind,
               "schedule": params.sparsity.schedule if k else "dense", **counts,
               "macs_dense": macs_dense, "macs": macs, "storage_bytes": storage,
               "storage_dense_bytes": storage_dense, "fid": fid, "kid_mean": kid_mean, "kid_std": kid_std,
               "heldout_loss": loss, "feature_extractor": extractor.name,
               "num_samples": params.eval.num_samples, "sampler": f"DDIM-{params.eval.sampling_steps}"}
    if not all(np.isfinite(v) for v in (fid, kid_mean, kid_std, loss)):
        raise RuntimeError(f"non-finite metrics for seed {seed} round {k}: {metrics}")
    save_json(metrics, out / "metrics.json")
    tqdm.write(f"eval {kind} seed {seed} round {k}: sparsity {counts['sparsity']:.1%}, FID {fid:.2f} "
               f"({extractor.name}, {params.eval.num_samples} samples, DDIM-{params.eval.sampling_steps}), "
               f"KID {kid_mean:.4f} ± {kid_std:.4f}, held-out loss {loss:.5f}, "
               f"MACs {macs / 1e6:.1f} M / {macs_dense / 1e6:.1f} M, ticket {storage / 1e3:.0f} kB "
               f"/ dense {storage_dense / 1e3:.0f} kB; {time.perf_counter() - start:.0f} s")
