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
from . import distributed
from .config import ConfigError, Params
from .cost import count_macs, save_compressed_ticket, torch_save_bytes
from .data import load_dataset, load_uint8, to_uint8
from .diffusion import Diffusion, sample_images
from .evaluation import fid_from_statistics, fid_statistics, heldout_losses, heldout_set, heldout_summary, kid
from .features import classifier_state, extract_features, make_extractor, train_classifier
from .fid_stats import INF_METHOD, Reference, fid_uncertainty
from .pinned_extractor import find_pin, install, sha256_file
from .images import save_grid
from .io import load_json, load_torch, save_json, save_torch
from .masks import Mask
from .training import configure_threads, pick_device

GRID_IMAGES = 64


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def _extractor_digest(params: Params) -> str:
    """Full sha256 of the extractor's weights file, so stale reference statistics are caught and
    every FID names exactly the weights that produced it."""
    if params.eval.feature_extractor == "classifier":
        return sha256_file(A.classifier_path())
    if params.eval.feature_extractor == "inception-fid":
        from .inception_fid import verify_weights
        return verify_weights()[1]  # the installed package's default_1.pt, verified (hashed once per process)
    if params.eval.inception_weights is not None:
        return sha256_file(params.eval.inception_weights)
    # the release file torch-fidelity downloaded into torch hub's cache (its name carries a hash)
    cached = Path(torch.hub.get_dir()) / "checkpoints" / "weights-inception-2015-12-05-6726825d.pth"
    return sha256_file(cached) if cached.is_file() else "torch-fidelity-release-6726825d"


# -- features -------------------------------------------------------------------------------------
def run_features(params: Params) -> None:
    """The FID classifier: the pinned file when its manifest matches the params (and
    features.source is 'pinned'), else trained here. features.json says which."""
    pin = find_pin(params) if params.features.source == "pinned" else None
    if pin is not None:
        digest = install(pin, A.classifier_path())
        report = {"dataset": params.data.dataset, "source": "pinned",
                  "pinned_file": f"pipeline/assets/{pin.weights.name}", "sha256": digest,
                  **pin.manifest["report"]}
        save_json(report, A.features_dir() / "features.json")
        tqdm.write(f"features: pinned classifier {report['pinned_file']} (sha256 {digest[:12]}…, held-out "
                   f"accuracy {report['holdout_accuracy']:.1%}) -> {A.classifier_path()}")
        return
    reason = ("features.source = train" if params.features.source == "train" else
              "no pinned classifier matches these data and features params")
    torch.set_num_threads(params.train.threads)  # a small CNN: CPU is enough, even next to a GPU
    images, labels = load_uint8(params.data)
    result = train_classifier(images, labels, params.features)
    save_torch(classifier_state(result.net), A.classifier_path())
    report = {"dataset": params.data.dataset, "source": "trained", "source_reason": reason,
              "sha256": sha256_file(A.classifier_path()), **result.report}
    save_json(report, A.features_dir() / "features.json")
    acc = report["holdout_accuracy"]
    tqdm.write(f"features: classifier ({report['parameters']:,} params) trained {report['steps']} steps in "
               f"{result.seconds:.1f} s ({reason}); held-out accuracy "
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
    held_images, _ = load_uint8(params.data, train=False)
    floor.update(_heldout_floor(params, extract_features(extractor, held_images, params.eval.batch_size), stats))
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
               f"FID at {floor['floor_num_samples']} samples: {floor['fid_real_floor']:.2f} (training images), "
               f"{floor.get('fid_heldout_floor', float('nan')):.2f} (held-out images)")


def _real_floor(params: Params, feats: torch.Tensor, stats: dict) -> dict:
    """FID/KID of `eval.num_samples` real images (a seeded subset) against the full reference, as
    eval compares samples: what a perfect generator scores, the floor every FID is read against."""
    n = min(params.eval.num_samples, len(feats))
    idx = torch.randperm(len(feats), generator=torch.Generator().manual_seed(params.eval.seed))[:n]
    kid_mean, kid_std = kid(feats, feats[idx], min(params.eval.kid_subset_size, n), seed=params.eval.seed)
    return {"floor_num_samples": n, "fid_real_floor": fid_from_statistics(stats, fid_statistics(feats[idx])),
            "kid_real_floor_mean": kid_mean, "kid_real_floor_std": kid_std}


def _fid_uncertainty(params: Params, ref: Reference, feats: torch.Tensor):
    ev = params.eval
    return fid_uncertainty(ref, feats, resamples=ev.fid_bootstrap, level=ev.fid_ci_level, inf_sizes=ev.fid_inf_sizes,
                           inf_subsets=ev.fid_inf_subsets, inf_min_fraction=ev.fid_inf_min_fraction,
                           inf_resamples=ev.fid_inf_bootstrap, seed=ev.seed)


def _heldout_floor(params: Params, held_feats: torch.Tensor, stats: dict) -> dict:
    """FID of real images the reference has never seen (held-out split), up to eval.num_samples of
    them, with the same interval and FID_inf as every eval: what a perfect generator scores."""
    n = min(params.eval.num_samples, len(held_feats))
    if not 2 <= round(params.eval.fid_inf_min_fraction * n) < n:
        return {}  # too few held-out images for the FID_inf fit
    idx = torch.randperm(len(held_feats), generator=torch.Generator().manual_seed(params.eval.seed))[:n]
    spread = _fid_uncertainty(params, Reference.from_statistics(stats["mu"], stats["sigma"]), held_feats[idx])
    return {"heldout_floor_num_samples": n, "fid_heldout_floor": spread.fid,
            "fid_heldout_floor_ci": spread.fid_ci, "fid_inf_heldout_floor": spread.fid_inf,
            "fid_inf_heldout_floor_ci": spread.fid_inf_ci}


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
    diffusion = Diffusion(params.diffusion, device)
    samples = sample_images(diffusion, ema, params.eval.num_samples, shape, params.eval.sampling_steps,
                            batch_size=params.eval.batch_size, seed=params.eval.seed, progress=True)
    if not distributed.is_main():  # the other ranks only help sample
        return
    counts = ticket_counts(params, ema, mask)
    macs_dense, macs = count_macs(ema, mask, (1, *shape), (torch.zeros(1, dtype=torch.long, device=device),))
    storage = save_compressed_ticket(ema.state_dict(), mask, out / "ticket.bin")
    storage_dense = torch_save_bytes(ema.state_dict())

    held = heldout_set(load_dataset(params.data, train=False), params.eval.heldout_size, diffusion.timesteps,
                       params.eval.seed)
    heldout = heldout_summary(heldout_losses(diffusion, ema, held, params.eval.batch_size), held.t,
                              diffusion.timesteps, params.eval.heldout_buckets)
    loss = heldout["heldout_loss"]

    save_grid(samples[:GRID_IMAGES], out / "samples.png")
    feats = extract_features(extractor, to_uint8(samples), params.eval.batch_size)
    ref_stats = {"mu": ref["mu"].numpy(), "sigma": ref["sigma"].numpy()}
    fid = fid_from_statistics(ref_stats, fid_statistics(feats))
    kid_mean, kid_std = kid(ref["features"], feats, params.eval.kid_subset_size, seed=params.eval.seed)
    ev = params.eval
    spread = _fid_uncertainty(params, Reference.from_statistics(ref_stats["mu"], ref_stats["sigma"]), feats)

    kind = control or ("ticket" if k else "dense")
    rewind = ("reinit" if control == "reinit" else params.rewind.mode) if k else "none"
    metrics = {"seed": seed, "round": k, "kind": kind, "rewind": rewind,
               "schedule": params.sparsity.schedule if k else "dense", **counts,
               "macs_dense": macs_dense, "macs": macs, "storage_bytes": storage,
               "storage_dense_bytes": storage_dense, "fid": fid, "kid_mean": kid_mean, "kid_std": kid_std,
               **spread.metrics(ev.fid_ci_level, ev.fid_bootstrap), "fid_inf_method": INF_METHOD,
               **heldout, "feature_extractor": extractor.name, "extractor_sha256": _extractor_digest(params),
               "num_samples": params.eval.num_samples, "sampler": f"DDIM-{params.eval.sampling_steps}"}
    values = (fid, kid_mean, kid_std, loss, spread.fid_inf, *spread.fid_ci, *spread.fid_inf_ci)
    if not all(np.isfinite(v) for v in values):
        raise RuntimeError(f"non-finite metrics for seed {seed} round {k}: {metrics}")
    save_json(metrics, out / "metrics.json")
    tqdm.write(f"eval {kind} seed {seed} round {k}: sparsity {counts['sparsity']:.1%}, FID {fid:.2f} "
               f"[{spread.fid_ci[0]:.2f}, {spread.fid_ci[1]:.2f}], FID_inf {spread.fid_inf:.2f} "
               f"({extractor.name}, {params.eval.num_samples} samples, DDIM-{params.eval.sampling_steps}), "
               f"KID {kid_mean:.4f} ± {kid_std:.4f}, held-out loss {loss:.5f}, "
               f"MACs {macs / 1e6:.1f} M / {macs_dense / 1e6:.1f} M, ticket {storage / 1e3:.0f} kB "
               f"/ dense {storage_dense / 1e3:.0f} kB; {time.perf_counter() - start:.0f} s")
