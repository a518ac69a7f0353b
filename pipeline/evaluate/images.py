"""Sample grids as PNG."""
from __future__ import annotations

import math
from pathlib import Path

import torch
from torchvision.utils import make_grid
from PIL import Image

from pipeline.data.prepared import to_uint8
from pipeline.core.io import _atomic


def save_grid(images: torch.Tensor, path: str | Path, scale: int | None = None) -> Path:
    """Images in [-1, 1] (N, C, H, W) as one square-ish grid PNG, upscaled `scale` times
    (by default enough that a small digit is about 48 pixels tall)."""
    scale = scale or max(2, 48 // images.shape[-1])
    nrow = max(1, int(math.ceil(math.sqrt(len(images)))))
    grid = make_grid(to_uint8(images.cpu()), nrow=nrow, padding=1, pad_value=255)
    arr = grid.permute(1, 2, 0).numpy()
    img = Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr)
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    return _atomic(path, lambda tmp: img.save(tmp, format="PNG"))
