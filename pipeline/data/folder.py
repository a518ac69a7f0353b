"""A folder of images as a dataset (`data.dataset: imagefolder`), without a torchvision subclass.

Layouts, checked in this order:
- `root/train/` and `root/test/`: the training and held-out splits, each a folder of class
  subfolders (or of images directly). CIFAR-10's JPEG copy and torchvision's ImageFolder use this.
- `root/<class>/*`: class subfolders, labels in sorted folder order (torchvision's rule).
- `root/*`: images directly, one label (0).
Without a `test/` folder the held-out images are a seeded split of `data.heldout` of them, as for
mnist5k. Files that are not images by their extension (a README) are skipped; an image that cannot
be decoded, an empty class folder or a folder without images is one line naming the path.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.core.config import ConfigError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"})


@dataclass(frozen=True)
class Split:
    files: tuple[Path, ...]
    labels: tuple[int, ...]
    classes: tuple[str, ...]


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def scan(folder: Path) -> Split:
    """The images of one split folder: class subfolders, or images directly."""
    if not folder.is_dir():
        raise ConfigError(f"data.root: {folder} is not a folder")
    classes = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    loose = _images_in(folder)
    if classes and loose:
        raise ConfigError(f"data.root: {folder} mixes images ({loose[0].name}, …) with class folders "
                          f"({classes[0].name}, …); put every image in a class folder")
    if not classes:
        if not loose:
            raise ConfigError(f"data.root: {folder} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        return Split(tuple(loose), (0,) * len(loose), ("",))
    files, labels = [], []
    for label, cls in enumerate(classes):
        images = _images_in(cls)
        if not images:
            raise ConfigError(f"data.root: class folder {cls} holds no images")
        files += images
        labels += [label] * len(images)
    return Split(tuple(files), tuple(labels), tuple(c.name for c in classes))


def splits(root: str | Path) -> tuple[Split, Split | None]:
    """(training, held-out) of `root`; held-out is None when `root` has no test/ folder."""
    root = Path(root)
    if not root.exists():
        raise ConfigError(f"data.root = '{root}' does not exist")
    if (root / "test").is_dir():
        if not (root / "train").is_dir():
            raise ConfigError(f"data.root: {root} has a test/ folder but no train/ folder beside it")
        train, held = scan(root / "train"), scan(root / "test")
        if held.classes != train.classes:
            raise ConfigError(f"data.root: the class folders of {root / 'test'} differ from those of {root / 'train'}")
        return train, held
    return scan(root), None


def decode(files: tuple[Path, ...], channels: int) -> list[np.ndarray]:
    """Each file as uint8 (H, W, C) with C = `channels` (PIL's "L" or "RGB" conversion)."""
    from PIL import Image, UnidentifiedImageError

    mode = "L" if channels == 1 else "RGB"
    out = []
    for path in files:
        try:
            with Image.open(path) as im:
                arr = np.asarray(im.convert(mode), dtype=np.uint8)
        except (UnidentifiedImageError, OSError, ValueError) as err:
            raise ConfigError(f"data.root: cannot read image {path} ({type(err).__name__}: {err})") from None
        out.append(arr[..., None] if arr.ndim == 2 else arr)
    return out


def centre_crop(image: np.ndarray) -> np.ndarray:
    """The largest centred square of an (H, W, C) image."""
    h, w = image.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    return image[top:top + side, left:left + side]
