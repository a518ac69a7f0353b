"""The pinned FID classifier: the default study's feature extractor, trained once by the project's
own `train_classifier` and committed under pipeline/assets/ with a JSON manifest (what it was
trained on, its sha256, its held-out accuracy).

A classifier retrained on another machine lands on slightly different weights (other BLAS, other
thread count), and every FID moves with it. The features stage therefore copies the pinned file
verbatim whenever its manifest matches the params, verifying the hash on the way, so the same
images give the same FID everywhere. Regenerate a pin with `python -m pipeline.evaluate.pinned`.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch

from pipeline.core.config import ConfigError, Params, load_params
from pipeline.core.io import load_json, save_json, save_torch

ASSETS = Path(__file__).resolve().parents[1] / "assets"  # pipeline/assets: data, not code
MANIFEST_SUFFIX = ".manifest.json"
DATA_KEYS = ("dataset", "image_size", "channels", "heldout", "heldout_seed")  # what the classifier sees


def sha256_file(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def pin_key(params: Params, images_sha256: Optional[str] = None) -> dict:
    """Everything the classifier's weights depend on: the training images and the recipe. A named
    dataset is identified by its params; an image folder by the digest of its prepared pixels
    (`images_sha256`), since any folder can sit behind data.root."""
    data = params.data.model_dump(mode="json")
    features = params.features.model_dump(mode="json")
    features.pop("source")
    key = {k: data[k] for k in DATA_KEYS}
    if params.data.dataset == "imagefolder":
        key["images_sha256"] = images_sha256
    return {"data": key, "features": features}


@dataclass(frozen=True)
class Pin:
    weights: Path
    manifest: dict


def find_pin(params: Params, assets: Optional[Path] = None, images_sha256: Optional[str] = None) -> Optional[Pin]:
    """The pinned classifier whose manifest matches the params (and, for an image folder, its
    prepared images' digest), or None."""
    key = pin_key(params, images_sha256)
    for manifest_path in sorted((assets or ASSETS).glob(f"*{MANIFEST_SUFFIX}")):
        manifest = load_json(manifest_path)
        if {"data": manifest.get("data"), "features": manifest.get("features")} == key:
            return Pin(manifest_path.parent / manifest["file"], manifest)
    return None


def verified_bytes(pin: Pin) -> bytes:
    """The pinned file's bytes; a missing or modified file is a one-line ConfigError."""
    if not pin.weights.is_file():
        raise ConfigError(f"pinned feature extractor {pin.weights} is missing (its manifest expects sha256 "
                          f"{pin.manifest['sha256']}); restore it from git or set features.source: train")
    data = pin.weights.read_bytes()
    actual = hashlib.sha256(data).hexdigest()
    if actual != pin.manifest["sha256"]:
        raise ConfigError(f"pinned feature extractor {pin.weights} is modified: expected sha256 "
                          f"{pin.manifest['sha256']}, got {actual}; restore it from git or set features.source: train")
    return data


def install(pin: Pin, dest: Path) -> str:
    """Copy the verified pinned file to `dest` byte for byte (atomically); its sha256."""
    data = verified_bytes(pin)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.pinned.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, dest)
    return pin.manifest["sha256"]


CHECK_IMAGES = 250  # images per side of the manifest's reproducibility check


def check_fid(params: Params, weights: Path) -> float:
    """FID of CHECK_IMAGES evenly strided training-split images against as many held-out ones
    (strided: mnist5k is sorted by class), through `weights`: recorded in the manifest, so any machine can confirm that the pinned
    extractor gives the same FID on the same images."""
    from pipeline.data.prepared import load_uint8
    from pipeline.evaluate.fid import fid
    from pipeline.evaluate.features import extract_features, make_extractor

    extractor = make_extractor(params, weights)
    train, _ = load_uint8(params.data)
    held, _ = load_uint8(params.data, train=False)
    def pick(images):
        return images[::max(1, len(images) // CHECK_IMAGES)][:CHECK_IMAGES]

    return fid(extract_features(extractor, pick(train), CHECK_IMAGES),
               extract_features(extractor, pick(held), CHECK_IMAGES))


def write_pin(params: Params, assets: Optional[Path] = None, progress: bool = True) -> Path:
    """Train the classifier the features stage would train for `params` and commit-ready pin it."""
    from pipeline.data.prepared import images_sha256, load_uint8
    from pipeline.evaluate.features import classifier_state, train_classifier

    assets = assets or ASSETS
    images, labels = load_uint8(params.data)
    result = train_classifier(images, labels, params.features, progress=progress)
    key = pin_key(params, images_sha256(images))
    name = params.data.label.split(",")[0].strip().lower().replace(" ", "") if params.data.label else key['data']['dataset']
    stem = f"classifier-{name}-{key['data']['image_size']}px-{key['data']['channels']}ch"
    weights = save_torch(classifier_state(result.net), assets / f"{stem}.pt")
    manifest = {"file": weights.name, "sha256": sha256_file(weights), **key,
                "holdout_accuracy": result.report["holdout_accuracy"], "report": result.report,
                "check": {"images": CHECK_IMAGES, "what": "FID, strided training-split vs strided held-out images",
                          "fid": check_fid(params, weights)},
                "torch": torch.__version__}
    return save_json(manifest, assets / f"{stem}{MANIFEST_SUFFIX}")


if __name__ == "__main__":
    torch.set_num_threads(1)
    print(write_pin(load_params()))
