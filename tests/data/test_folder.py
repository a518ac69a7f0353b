"""data.dataset: imagefolder — real CIFAR-10 images (a 300-image subset of the JPEG copy), layouts,
shapes, and the one-line errors for folders that cannot be used."""
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pipeline.core.config import ConfigError, DataConfig
from pipeline.data import folder
from pipeline.data.sources import decode, missing_data

CIFAR = Path(__file__).resolve().parents[1] / "fixtures" / "cifar10-subset"
CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def cfg(root, **kw) -> DataConfig:
    return DataConfig(**{"dataset": "imagefolder", "root": str(root), "image_size": 32, "channels": 3, **kw})


def test_cifar_subset_reads_with_its_test_split_and_classes():
    train, held = folder.splits(CIFAR)
    assert list(train.classes) == CLASSES and held is not None and held.classes == train.classes
    images, labels = decode(cfg(CIFAR))
    assert images.shape == (200, 3, 32, 32) and images.dtype == torch.uint8
    assert torch.bincount(labels).tolist() == [20] * 10
    held_images, held_labels = decode(cfg(CIFAR), train=False)
    assert held_images.shape == (100, 3, 32, 32) and torch.bincount(held_labels).tolist() == [10] * 10
    # real photographs, not noise: neighbouring pixels are strongly correlated
    x = images.float()
    corr = np.corrcoef(x[..., :-1].flatten().numpy(), x[..., 1:].flatten().numpy())[0, 1]
    assert corr > 0.8
    # at the native size the pixels are exactly PIL's decode of the file
    first = np.array(Image.open(CIFAR / "train" / "airplane" / "0000.jpg").convert("RGB"))
    assert torch.equal(images[0], torch.from_numpy(first).permute(2, 0, 1))


def test_resize_and_grayscale():
    small, _ = decode(cfg(CIFAR, image_size=16))
    gray, _ = decode(cfg(CIFAR, image_size=16, channels=1))
    assert small.shape == (200, 3, 16, 16) and gray.shape == (200, 1, 16, 16)
    luma = (small.float() * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
    assert (gray.float() - luma).abs().mean() < 2.0, "grayscale is the luma of the colour image"


def test_folder_without_test_split_is_split_by_seed(tmp_path):
    shutil.copytree(CIFAR / "train", tmp_path / "imgs")
    c = cfg(tmp_path / "imgs", heldout=50, heldout_seed=3)
    train, _ = decode(c)
    held, _ = decode(c, train=False)
    assert len(train) == 150 and len(held) == 50
    rows = {bytes(r) for r in train.flatten(1).numpy()}
    assert not any(bytes(r) in rows for r in held.flatten(1).numpy())
    other, _ = decode(c.model_copy(update={"heldout_seed": 4}), train=False)
    assert not torch.equal(other, held)


def test_images_directly_in_the_folder_and_centre_crop(tmp_path):
    rng = np.random.default_rng(0)
    wide = rng.integers(0, 256, (20, 40, 3), dtype=np.uint8)
    wide[:, 10:30] = 200  # the centred square is flat; the crop must cut the noisy sides away
    for i in range(4):
        Image.fromarray(wide).save(tmp_path / f"{i}.png")
    (tmp_path / "notes.txt").write_text("not an image: skipped")
    images, labels = decode(cfg(tmp_path, image_size=20, heldout=1))
    assert images.shape == (3, 3, 20, 20) and labels.tolist() == [0, 0, 0]
    assert (images == 200).all()


def test_mixed_sizes_are_each_cropped_and_resized(tmp_path):
    for i, (h, w) in enumerate([(32, 32), (48, 64), (32, 32), (17, 23)]):
        Image.new("RGB", (w, h), (10 * i, 0, 0)).save(tmp_path / f"{i}.png")
    images, _ = decode(cfg(tmp_path, image_size=8, heldout=1))
    assert images.shape == (3, 3, 8, 8)


def test_corrupt_image_is_one_line_naming_it(tmp_path):
    root = tmp_path / "imgs"
    shutil.copytree(CIFAR / "test", root)
    bad = root / "cat" / "0003.jpg"
    bad.write_bytes(b"not a jpeg at all")
    with pytest.raises(ConfigError) as err:
        decode(cfg(root, heldout=10))
    msg = str(err.value)
    assert "\n" not in msg and str(bad) in msg and "cannot read image" in msg


def test_empty_class_folder_is_one_line_naming_it(tmp_path):
    root = tmp_path / "imgs"
    shutil.copytree(CIFAR / "test", root)
    (root / "unicorn").mkdir()
    with pytest.raises(ConfigError) as err:
        decode(cfg(root, heldout=10))
    msg = str(err.value)
    assert "\n" not in msg and str(root / "unicorn") in msg and "no images" in msg


@pytest.mark.parametrize("make, words", [
    (lambda p: None, "does not exist"),
    (lambda p: p.mkdir(), "holds no images"),
    (lambda p: (p / "test").mkdir(parents=True), "no train/ folder"),
])
def test_unusable_roots_say_what_is_wrong_and_how_to_get_images(tmp_path, make, words):
    root = tmp_path / "root"
    make(root)
    problem = missing_data(cfg(root))
    assert problem and words in problem and "\n" not in problem and "tar xzf" in problem
    assert missing_data(cfg(CIFAR)) is None


def test_mismatched_class_folders_between_splits(tmp_path):
    root = tmp_path / "root"
    shutil.copytree(CIFAR, root)
    shutil.rmtree(root / "test" / "truck")
    with pytest.raises(ConfigError, match="class folders"):
        folder.splits(root)
