"""Evaluate one trained net: DDIM samples from its EMA weights -> FID with interval and FID_inf,
KID, the held-out denoising loss per timestep bucket, MACs and storage (the `eval`, `eval_dense` and
`eval_control` stages)."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from pipeline.core import paths
from pipeline.core.config import ConfigError, Params
from pipeline.core.io import load_torch, save_json
from pipeline.data.prepared import load_dataset, to_uint8
from pipeline.ddpm.diffusion import Diffusion, sample_images
from pipeline.evaluate.cost import count_macs, save_compressed_ticket, torch_save_bytes
from pipeline.evaluate.features import extract_features, make_extractor
from pipeline.evaluate.fid import fid_from_statistics, fid_statistics, heldout_losses, heldout_set, heldout_summary, kid
from pipeline.evaluate.images import save_grid
from pipeline.evaluate.intervals import INF_METHOD, Reference
from pipeline.evaluate.reference import extractor_digest, fid_interval, load_reference
from pipeline.runtime import distributed
from pipeline.runtime.device import configure_threads, pick_device
from pipeline.sparsity import tickets
from pipeline.sparsity.masks import Mask

GRID_IMAGES = 64


def ticket_counts(params: Params, model: torch.nn.Module, mask: Mask | None) -> dict[str, int | float]:
    """Sparsity and parameter counts of a ticket (the dense net: nothing pruned)."""
    prunable = mask if mask is not None else Mask.dense(model, params.sparsity.include, params.sparsity.exclude)
    total, kept = prunable.total(), (prunable.kept() if mask is not None else prunable.total())
    params_total = sum(p.numel() for p in model.parameters())
    return {"sparsity": 1.0 - kept / total, "prunable_total": total, "prunable_kept": kept,
            "params_total": params_total, "params_kept": params_total - (total - kept)}


def _heldout_curve(params: Params, dense: Path, diffusion: Diffusion, held, final: torch.Tensor) -> dict[str, list]:
    """Per-item held-out losses of the EMA weights of the dense run in folder `dense` at
    train.convergence_checks and at the end (step -> losses): the data of the convergence check
    (pipeline.stats.convergence)."""
    checks = load_torch(dense / "ema_checks.pt")
    model = tickets.new_model(params).to(diffusion.device)
    curve = {}
    for step in sorted(checks):
        model.load_state_dict(checks[step])
        curve[str(step)] = heldout_losses(diffusion, model, held, params.eval.batch_size).tolist()
    curve[str(params.train.steps)] = final.tolist()
    return curve


def evaluate_net(params: Params, seed: int, k: int, control: str | None = None,
                 where: tuple[Path, Path] | None = None) -> None:
    """FID/KID, held-out loss and cost of seed `seed`'s round-k net (k = 0: dense), or of its
    `control` (reinit | random) when given. Reads no imp.* param (a missing net is reported below),
    so adding IMP rounds leaves the existing evals alone. `where`: (the trained net's folder, the
    output folder) instead of the chain's (the budget check's nets)."""
    start = time.perf_counter()
    configure_threads()
    device = pick_device()
    trained, out = where or ((paths.control_train_dir(control, seed, k), paths.control_eval_dir(control, seed, k))
                             if control else (paths.train_dir(seed, k), paths.eval_dir(seed, k)))
    ticket = trained / "model.pt"
    if not ticket.exists():
        raise ConfigError(f"{ticket} not found: train {control or 'round'} {k} of seed {seed} first")
    # fail fast on a missing extractor or stale reference, before minutes of sampling
    extractor = make_extractor(params, paths.classifier_path())
    _, ref = load_reference(params)

    _, ema, mask, _ = tickets.load_ticket(ticket, params, device)
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
    items = heldout_losses(diffusion, ema, held, params.eval.batch_size)
    heldout = heldout_summary(items, held.t, diffusion.timesteps, params.eval.heldout_buckets)
    curve = _heldout_curve(params, trained, diffusion, held, items) if k == 0 and control is None else None
    loss = heldout["heldout_loss"]

    save_grid(samples[:GRID_IMAGES], out / "samples.png")
    feats = extract_features(extractor, to_uint8(samples), params.eval.batch_size)
    ref_stats = {"mu": ref["mu"].numpy(), "sigma": ref["sigma"].numpy()}
    fid = fid_from_statistics(ref_stats, fid_statistics(feats))
    kid_mean, kid_std = kid(ref["features"], feats, params.eval.kid_subset_size, seed=params.eval.seed)
    ev = params.eval
    # the intervals' hundreds of Fréchet distances run on this rank's GPU when it has one
    spread = fid_interval(params, Reference.from_statistics(ref_stats["mu"], ref_stats["sigma"]), feats, device)

    kind = control or ("ticket" if k else "dense")
    rewind = ("reinit" if control == "reinit" else params.rewind.mode) if k else "none"
    metrics = {"seed": seed, "round": k, "kind": kind, "rewind": rewind,
               "schedule": params.sparsity.schedule if k else "dense", **counts,
               "macs_dense": macs_dense, "macs": macs, "storage_bytes": storage,
               "storage_dense_bytes": storage_dense, "fid": fid, "kid_mean": kid_mean, "kid_std": kid_std,
               **spread.metrics(ev.fid_ci_level, ev.fid_bootstrap), "fid_inf_method": INF_METHOD,
               **heldout, "feature_extractor": extractor.name, "extractor_sha256": extractor_digest(params),
               "num_samples": params.eval.num_samples, "sampler": f"DDIM-{params.eval.sampling_steps}"}
    values = (fid, kid_mean, kid_std, loss, spread.fid_inf, *spread.fid_ci, *spread.fid_inf_ci)
    if not all(np.isfinite(v) for v in values):
        raise RuntimeError(f"non-finite metrics for seed {seed} round {k}: {metrics}")
    save_json(metrics, out / "metrics.json")
    # what paired comparisons across runs need: every run scores the same held-out items and its FID
    # split errors use the same sample indices (pipeline.stats.paired)
    save_json({"heldout_items": items.tolist(), **spread.replicate_arrays(),
               **({"heldout_curve": curve} if curve is not None else {})}, out / "paired.json")
    tqdm.write(f"eval {kind} seed {seed} round {k}: sparsity {counts['sparsity']:.1%}, FID {fid:.2f} "
               f"[{spread.fid_ci[0]:.2f}, {spread.fid_ci[1]:.2f}], FID_inf {spread.fid_inf:.2f} "
               f"({extractor.name}, {params.eval.num_samples} samples, DDIM-{params.eval.sampling_steps}), "
               f"KID {kid_mean:.4f} ± {kid_std:.4f}, held-out loss {loss:.5f}, "
               f"MACs {macs / 1e6:.1f} M / {macs_dense / 1e6:.1f} M, ticket {storage / 1e3:.0f} kB "
               f"/ dense {storage_dense / 1e3:.0f} kB; {time.perf_counter() - start:.0f} s")
