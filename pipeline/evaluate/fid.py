"""Sample-quality numbers: FID and KID through torch-fidelity's own metric functions, on features
we extract once (reference) or per round (samples); and a low-noise denoising-loss signal.

We call torch-fidelity's metric math on feature tensors instead of `calculate_metrics` so the
reference features are computed once by their own DVC stage -- no torch-fidelity cache whose
name would have to carry a content hash.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_features_to_statistics, fid_statistics_to_metric
from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, KEY_METRIC_KID_STD, kid_features_to_metric

from pipeline.ddpm.diffusion import Diffusion


def fid_statistics(features: torch.Tensor) -> dict[str, np.ndarray]:
    """torch-fidelity's (mu, sigma) of (N, D) features: float32 mean, float64 covariance."""
    return fid_features_to_statistics(features.detach().cpu().float())


def fid_from_statistics(stats_1: dict[str, np.ndarray], stats_2: dict[str, np.ndarray]) -> float:
    return float(fid_statistics_to_metric(stats_1, stats_2, verbose=False)[KEY_METRIC_FID])


def fid(features_1: torch.Tensor, features_2: torch.Tensor) -> float:
    return fid_from_statistics(fid_statistics(features_1), fid_statistics(features_2))


def kid(features_1: torch.Tensor, features_2: torch.Tensor, subset_size: int, subsets: int = 100,
        seed: int = 2020) -> tuple[float, float]:
    """torch-fidelity's KID (cubic polynomial kernel, unbiased MMD^2 over random subsets): mean, std."""
    out = kid_features_to_metric(features_1.detach().cpu().float(), features_2.detach().cpu().float(),
                                 kid_subset_size=subset_size, kid_subsets=subsets, rng_seed=seed, verbose=False)
    return float(out[KEY_METRIC_KID_MEAN]), float(out[KEY_METRIC_KID_STD])


@dataclass
class HeldoutSet:
    """Fixed (image, timestep, noise) triples: the same for every round, so losses compare."""
    x0: torch.Tensor
    t: torch.Tensor
    noise: torch.Tensor


def heldout_set(data: torch.Tensor, size: int, timesteps: int, seed: int) -> HeldoutSet:
    """`size` images of `data` (float, model range) with timesteps and noise, all drawn on the CPU
    from one generator seeded by `seed` (identical on every machine). When `size` exceeds the
    images, every image is used as evenly as possible (each with its own t and noise)."""
    gen = torch.Generator().manual_seed(seed)
    perms = [torch.randperm(len(data), generator=gen) for _ in range(-(-size // len(data)))]
    idx = torch.cat(perms)[:size]
    x0 = data[idx].float()
    t = torch.randint(0, timesteps, (size,), generator=gen)
    noise = torch.randn(x0.shape, generator=gen)
    return HeldoutSet(x0, t, noise)


@torch.inference_mode()
def heldout_losses(diffusion: Diffusion, model: nn.Module, held: HeldoutSet, batch_size: int) -> torch.Tensor:
    """Per-item denoising loss of `model` on the fixed set, fp32, (N,) float64 on the CPU."""
    was_training = model.training
    model.eval()
    dev = diffusion.device
    out = []
    for i in range(0, len(held.x0), batch_size):
        sl = slice(i, i + batch_size)
        x0, t, noise = held.x0[sl].to(dev), held.t[sl].to(dev), held.noise[sl].to(dev)
        out.append(diffusion.loss(model, x0, t, noise, reduction="none").double().cpu())
    model.train(was_training)
    return torch.cat(out)


def heldout_loss(diffusion: Diffusion, model: nn.Module, held: HeldoutSet, batch_size: int) -> float:
    """Mean denoising loss of `model` over the fixed set, in fp32 (a signal far less noisy than FID)."""
    return float(heldout_losses(diffusion, model, held, batch_size).mean())


def t_bucket_edges(timesteps: int, buckets: int) -> list[int]:
    """`buckets` + 1 integer edges from 0 to T; bucket i holds t in [edges[i], edges[i + 1])."""
    return [int(round(e)) for e in np.linspace(0, timesteps, buckets + 1)]


def heldout_summary(losses: torch.Tensor, t: torch.Tensor, timesteps: int, buckets: int) -> dict:
    """The metrics.json keys of the held-out loss: its mean, standard error over the items, and the
    mean per timestep bucket (None where a bucket holds no item)."""
    losses = losses.double().cpu()
    n = len(losses)
    edges = t_bucket_edges(timesteps, buckets)
    which = torch.bucketize(t.cpu(), torch.tensor(edges[1:-1]), right=True)
    by_t = [float(losses[which == b].mean()) if bool((which == b).any()) else None for b in range(buckets)]
    se = float(losses.std(unbiased=True) / n ** 0.5) if n > 1 else float("nan")
    return {"heldout_loss": float(losses.mean()), "heldout_loss_se": se,
            "heldout_loss_by_t": by_t, "heldout_t_edges": edges}
