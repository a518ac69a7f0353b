"""The DDPM U-Net of Ho et al. 2020: residual blocks with GroupNorm and a time embedding,
self-attention at chosen resolutions, skip connections from every down step to the up path.

Modules are registered in the order the forward pass calls them, so `named_parameters()` walks
the network from input to output (the similarity analysis relies on that order).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.core.config import ModelConfig


class SinusoidalEmbedding(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        half = self.dim // 2
        freqs = torch.exp(-math.log(10000) * torch.arange(half, device=t.device, dtype=torch.float32) / (half - 1))
        args = t.float()[:, None] * freqs[None]
        return torch.cat([args.sin(), args.cos()], dim=-1)


class BatchDropout(nn.Module):
    """Dropout whose mask for sample i of the global batch does not depend on how that batch is
    split over data-parallel ranks, like the loop's noise: each call draws the mask of the whole
    global batch from the device's RNG (the loop seeds it per (seed, step), the same on every rank)
    and keeps this rank's rows. Without `rows` (set by `set_dropout_rows`), plain dropout."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p
        self.rows: tuple[int, int, int] | None = None  # (global batch, lo, hi)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if self.rows is None or self.rows[2] - self.rows[1] != x.shape[0]:
            return F.dropout(x, self.p, training=True)
        batch, lo, hi = self.rows
        keep = torch.rand((batch, *x.shape[1:]), device=x.device)[lo:hi] >= self.p
        return x * keep.to(x.dtype) * (1.0 / (1.0 - self.p))


def set_dropout_rows(model: nn.Module, rows: tuple[int, int, int] | None) -> None:
    """Tell every BatchDropout of `model` the global batch and this rank's rows [lo, hi) of it
    (None: back to plain dropout)."""
    for module in model.modules():
        if isinstance(module, BatchDropout):
            module.rows = rows


class ResBlock(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, time_dim: int, dropout: float, groups: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.time_proj = nn.Linear(time_dim, out_ch)
        self.norm2 = nn.GroupNorm(groups, out_ch)
        self.dropout = BatchDropout(dropout)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.time_proj(F.silu(temb))[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return h + self.skip(x)


class Attention(nn.Module):
    """Single-head spatial self-attention, as in Ho et al."""

    def __init__(self, ch: int, groups: int):
        super().__init__()
        self.norm = nn.GroupNorm(groups, ch)
        self.qkv = nn.Conv2d(ch, 3 * ch, 1)
        self.proj = nn.Conv2d(ch, ch, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, c, h * w).transpose(-1, -2).unbind(1)
        q, k, v = q.unsqueeze(1), k.unsqueeze(1), v.unsqueeze(1)
        if x.is_cuda and q.stride(-1) != 1:
            # CUDA's fused SDPA kernels (flash, memory-efficient) need a unit last stride: channels-last
            # training has it, a contiguous (NCHW) eval model needs a copy. Not on the CPU, where the
            # copy changes the kernel's rounding (1e-6) and so the committed samples' bytes
            q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
        out = F.scaled_dot_product_attention(q, k, v).squeeze(1)
        return x + self.proj(out.transpose(-1, -2).reshape(b, c, h, w))


class Level(nn.Module):
    """One resolution of the down or up path: residual blocks (+ attention), then a resampler."""

    def __init__(self, blocks: list[ResBlock], attend: bool, resample: nn.Module, groups: int):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        ch = blocks[-1].conv2.out_channels
        self.attn = Attention(ch, groups) if attend else nn.Identity()
        self.resample = resample


class Upsample(nn.Module):
    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class UNet(nn.Module):
    """Layout of the paper's code base (a widely used PyTorch DDPM): level i runs its blocks at
    dims[i] and its resampler changes channels to dims[i+1]; every down block feeds a skip to the
    mirrored up block; a last residual block sees the initial features again."""

    def __init__(self, cfg: ModelConfig, channels: int, image_size: int):
        super().__init__()
        dim, groups = cfg.dim, cfg.norm_groups
        time_dim = 4 * dim
        self.time_embed = nn.Sequential(
            SinusoidalEmbedding(dim), nn.Linear(dim, time_dim), nn.SiLU(), nn.Linear(time_dim, time_dim)
        )
        self.init_conv = nn.Conv2d(channels, dim, 3, padding=1)

        dims = [dim] + [dim * m for m in cfg.dim_mults]
        pairs = list(zip(dims[:-1], dims[1:]))
        n = len(pairs)

        def block(i: int, o: int) -> ResBlock:
            return ResBlock(i, o, time_dim, cfg.dropout, groups)

        self.down = nn.ModuleList()
        res = image_size
        for i, (d_in, d_out) in enumerate(pairs):
            last = i == n - 1
            resample = nn.Conv2d(d_in, d_out, 3, stride=1 if last else 2, padding=1)
            self.down.append(Level([block(d_in, d_in) for _ in range(cfg.num_res_blocks)],
                                   res in cfg.attn_resolutions, resample, groups))
            res = res if last else res // 2

        mid = dims[-1]
        self.mid_block1 = block(mid, mid)
        self.mid_attn = Attention(mid, groups)
        self.mid_block2 = block(mid, mid)

        self.up = nn.ModuleList()
        for i, (d_in, d_out) in reversed(list(enumerate(pairs))):
            first = i == 0
            resample = nn.Conv2d(d_out, d_in, 3, padding=1) if first else Upsample(d_out, d_in)
            self.up.append(Level([block(d_out + d_in, d_out) for _ in range(cfg.num_res_blocks)],
                                 res in cfg.attn_resolutions, resample, groups))
            res = res if first else res * 2

        self.final_block = block(2 * dim, dim)
        self.final_conv = nn.Conv2d(dim, channels, 1)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        temb = self.time_embed(t)
        h = self.init_conv(x)
        first = h
        skips = []
        for level in self.down:
            for i, block in enumerate(level.blocks):
                h = block(h, temb)
                if i == len(level.blocks) - 1:
                    h = level.attn(h)
                skips.append(h)
            h = level.resample(h)
        h = self.mid_block2(self.mid_attn(self.mid_block1(h, temb)), temb)
        for level in self.up:
            for i, block in enumerate(level.blocks):
                h = block(torch.cat([h, skips.pop()], dim=1), temb)
            h = level.resample(level.attn(h))
        return self.final_conv(self.final_block(torch.cat([h, first], dim=1), temb))


def build_unet(cfg: ModelConfig, channels: int, image_size: int) -> UNet:
    return UNet(cfg, channels, image_size)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
