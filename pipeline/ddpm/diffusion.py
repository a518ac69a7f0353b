"""Gaussian diffusion after Ho et al. 2020: linear beta schedule, epsilon prediction,
DDPM ancestral and DDIM (Song et al. 2021) samplers, and sharded sampling over data-parallel ranks."""
from __future__ import annotations

from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from pipeline.runtime import distributed
from pipeline.runtime.compiling import SAMPLE_EVALS_WORTH_COMPILING, maybe_compile
from pipeline.core.config import DiffusionConfig


class Diffusion:
    def __init__(self, cfg: DiffusionConfig, device: torch.device | str = "cpu"):
        self.cfg = cfg
        self.timesteps = cfg.timesteps
        betas = torch.linspace(cfg.beta_start, cfg.beta_end, cfg.timesteps, dtype=torch.float64)
        alphas_bar = torch.cumprod(1.0 - betas, dim=0)
        self.device = torch.device(device)
        self.betas = betas.float().to(self.device)
        self.alphas_bar = alphas_bar.float().to(self.device)
        self.sqrt_ab = alphas_bar.sqrt().float().to(self.device)
        self.sqrt_1mab = (1.0 - alphas_bar).sqrt().float().to(self.device)

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """A draw from q(x_t | x_0) = N(sqrt(abar_t) x0, (1 - abar_t) I)."""
        return self.sqrt_ab[t].view(-1, 1, 1, 1) * x0 + self.sqrt_1mab[t].view(-1, 1, 1, 1) * noise

    def loss(self, model: nn.Module, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor,
             reduction: str = "mean") -> torch.Tensor:
        pred = model(self.q_sample(x0, t, noise), t)
        fn = F.mse_loss if self.cfg.loss == "l2" else F.l1_loss
        loss = fn(pred.float(), noise, reduction="none").flatten(1).mean(1)
        return loss.mean() if reduction == "mean" else loss

    def _autocast(self):
        return torch.autocast("cuda", dtype=torch.bfloat16) if self.device.type == "cuda" else torch.autocast("cpu", enabled=False)

    @torch.inference_mode()
    def sample_ddim(self, model: nn.Module, shape: tuple[int, ...], steps: int,
                    generator: Optional[torch.Generator] = None, eta: float = 0.0,
                    progress: bool = False, x_T: Optional[torch.Tensor] = None) -> torch.Tensor:
        """DDIM sampling on an evenly spaced sub-sequence of `steps` timesteps (eta=0: deterministic).
        `x_T`: the starting noise (default: drawn from `generator`)."""
        steps = min(steps, self.timesteps)
        ts = torch.linspace(self.timesteps - 1, 0, steps, dtype=torch.float64).round().long().tolist()
        x = torch.randn(shape, generator=generator, device=self.device) if x_T is None else x_T.to(self.device)
        for i, t in enumerate(tqdm(ts, desc="DDIM", leave=False, disable=not progress)):
            t_prev = ts[i + 1] if i + 1 < len(ts) else -1
            ab = self.alphas_bar[t]
            ab_prev = self.alphas_bar[t_prev] if t_prev >= 0 else torch.ones((), device=self.device)
            with self._autocast():
                eps = model(x, torch.full((shape[0],), t, device=self.device, dtype=torch.long)).float()
            x0 = ((x - (1 - ab).sqrt() * eps) / ab.sqrt()).clamp(-1, 1)
            eps = (x - ab.sqrt() * x0) / (1 - ab).sqrt()  # consistent with the clipped x0
            sigma = eta * ((1 - ab_prev) / (1 - ab) * (1 - ab / ab_prev)).sqrt()
            x = ab_prev.sqrt() * x0 + (1 - ab_prev - sigma**2).clamp(min=0).sqrt() * eps
            if eta > 0 and t_prev >= 0:
                x = x + sigma * torch.randn(shape, generator=generator, device=self.device)
        return x

    @torch.inference_mode()
    def sample_ddpm(self, model: nn.Module, shape: tuple[int, ...],
                    generator: Optional[torch.Generator] = None, progress: bool = False) -> torch.Tensor:
        """Ancestral sampling over all T steps, with sigma_t^2 = beta_t."""
        x = torch.randn(shape, generator=generator, device=self.device)
        for t in tqdm(range(self.timesteps - 1, -1, -1), desc="DDPM", leave=False, disable=not progress):
            beta, ab = self.betas[t], self.alphas_bar[t]
            with self._autocast():
                eps = model(x, torch.full((shape[0],), t, device=self.device, dtype=torch.long)).float()
            mean = (x - beta / (1 - ab).sqrt() * eps) / (1 - beta).sqrt()
            x = mean + (beta.sqrt() * torch.randn(shape, generator=generator, device=self.device) if t > 0 else 0)
        return x.clamp(-1, 1)


def sample_noise(seed: int, start: int, stop: int, shape: tuple[int, int, int]) -> torch.Tensor:
    """Starting noise of samples start..stop-1 (CPU): sample i's noise depends only on (seed, i),
    not on batch sizes, rank count or device."""
    return torch.stack([torch.randn(shape, generator=torch.Generator().manual_seed(seed * 1_000_003 + i))
                        for i in range(start, stop)]) if stop > start else torch.empty(0, *shape)


def sample_images(diffusion: Diffusion, model: nn.Module, n: int, shape: tuple[int, int, int],
                  steps: int, batch_size: int, seed: int, progress: bool = True,
                  on_batch: Callable[[int], None] | None = None) -> torch.Tensor:
    """n images in [-1, 1] from DDIM (eta = 0), deterministic for a seed; returned on every rank.

    Under torchrun each rank draws its contiguous share of the n samples in batches of at most
    `batch_size` and the shares are gathered, so the images do not depend on the rank count (to
    float rounding). `on_batch(b)` is called after each of this rank's batches. The network is
    compiled on CUDA when the work repays it (see compiling.py; LTH_COMPILE overrides).
    """
    lo, hi = distributed.shard(n)
    runner = maybe_compile(model, diffusion.device, "sampling", work=(hi - lo) * min(steps, diffusion.timesteps),
                           worth=SAMPLE_EVALS_WORTH_COMPILING)
    out = []
    with tqdm(total=n, desc=f"sampling (DDIM-{steps})", unit="img",
              disable=not (progress and distributed.is_main())) as bar:
        for start in range(lo, hi, batch_size):
            stop = min(start + batch_size, hi)
            x_T = sample_noise(seed, start, stop, shape)
            out.append(runner.run(lambda m: diffusion.sample_ddim(m, tuple(x_T.shape), steps, x_T=x_T)))
            bar.update((stop - start) * distributed.world_size())
            if on_batch is not None:
                on_batch(stop - start)
    local = torch.cat(out) if out else torch.empty(0, *shape, device=diffusion.device)
    return distributed.gather_rows(local, n).cpu()
