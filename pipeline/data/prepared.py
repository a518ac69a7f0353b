"""The prepared dataset: the `prepare` stage's tensor files, which every stage that trains or
evaluates reads instead of the source.

`artifacts/data/train.pt` and `heldout.pt` each hold {"images": uint8 (N, C, H, W), "labels":
int64 (N,)}; `data.json` says what they are. A changed source image changes these files and
re-runs what depends on them; an unchanged source writes the same bytes, so DVC stops there.
"""
from __future__ import annotations

import hashlib

import torch

from pipeline.core import paths
from pipeline.core.config import DataConfig
from pipeline.core.errors import ArtifactError

SPLITS = {True: "train", False: "heldout"}


def images_sha256(images: torch.Tensor) -> str:
    """A digest of the pixels and their shape (not of a file's bytes): what a pinned classifier
    was trained on."""
    h = hashlib.sha256(str(tuple(images.shape)).encode())
    h.update(images.contiguous().numpy().tobytes())
    return h.hexdigest()


def load_uint8(cfg: DataConfig, train: bool = True, root=paths.ROOT) -> tuple[torch.Tensor, torch.Tensor]:
    """The prepared training split (`train=False`: held-out) as uint8 (N, C, H, W) and labels.
    `cfg` only checks that the file fits the configured shape (a stale or foreign file otherwise
    trains a network of the wrong shape much later)."""
    path = paths.prepared_path(SPLITS[train], root)
    if not path.is_file():
        raise ArtifactError(path, "missing (the prepare stage decodes the dataset into it)")
    blob = torch.load(path, map_location="cpu", weights_only=True)
    images, labels = blob["images"], blob["labels"]
    want = (cfg.channels, cfg.image_size, cfg.image_size)
    if tuple(images.shape[1:]) != want:
        raise ArtifactError(path, f"holds {tuple(images.shape[1:])} images, the params ask for {want}")
    return images, labels


def to_model_range(images_uint8: torch.Tensor) -> torch.Tensor:
    return images_uint8.float().div(127.5).sub(1.0)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    return images.clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8)


def load_dataset(cfg: DataConfig, train: bool = True, root=paths.ROOT) -> torch.Tensor:
    """Float images in [-1, 1], (N, C, H, W), of the prepared training split (`train=False`: held-out)."""
    images, _ = load_uint8(cfg, train, root)
    return to_model_range(images)
