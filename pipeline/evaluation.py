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

from .diffusion import Diffusion


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
    from one generator seeded by `seed` (identical on every machine)."""
    gen = torch.Generator().manual_seed(seed)
    idx = (torch.randperm(len(data), generator=gen)[:size] if size <= len(data)
           else torch.randint(0, len(data), (size,), generator=gen))
    x0 = data[idx].float()
    t = torch.randint(0, timesteps, (size,), generator=gen)
    noise = torch.randn(x0.shape, generator=gen)
    return HeldoutSet(x0, t, noise)


@torch.inference_mode()
def heldout_loss(diffusion: Diffusion, model: nn.Module, held: HeldoutSet, batch_size: int) -> float:
    """Mean denoising loss of `model` over the fixed set, in fp32 (a signal far less noisy than FID)."""
    was_training = model.training
    model.eval()
    dev = diffusion.device
    total = torch.zeros((), dtype=torch.float64, device=dev)
    for i in range(0, len(held.x0), batch_size):
        sl = slice(i, i + batch_size)
        x0, t, noise = held.x0[sl].to(dev), held.t[sl].to(dev), held.noise[sl].to(dev)
        # batch mean x batch size: the overall mean does not depend on how the set is batched
        total += diffusion.loss(model, x0, t, noise, reduction="mean").double() * len(x0)
    model.train(was_training)
    return float(total / len(held.x0))
