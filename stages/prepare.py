"""DVC stage 'prepare': decode the dataset once (mnist5k, a torchvision dataset or an image folder)
into the tensor files every training and evaluation stage reads. It reads `data` params only.

Usage: python -m stages.prepare
"""
from __future__ import annotations

import time

from tqdm.auto import tqdm

from pipeline.app.stage import run_stage
from pipeline.core import paths
from pipeline.core.config import Params
from pipeline.core.io import save_json, save_torch
from pipeline.data.naming import data_name
from pipeline.data.prepared import SPLITS, images_sha256
from pipeline.data.sources import decode


def run_prepare(params: Params) -> None:
    start = time.perf_counter()
    info = {"dataset": params.data.dataset, "name": data_name(params.data),
            "shape": [params.data.channels, params.data.image_size, params.data.image_size]}
    for train, split in SPLITS.items():
        images, labels = decode(params.data, train)
        save_torch({"images": images, "labels": labels}, paths.prepared_path(split))
        info[split] = {"images": len(images), "classes": int(labels.max()) + 1 if len(labels) else 0,
                       "sha256": images_sha256(images)}
    save_json(info, paths.data_dir() / "data.json")  # no timings: it must be byte-stable
    tqdm.write(f"prepare: {info['name']}: {info['train']['images']:,} training and {info['heldout']['images']:,} "
               f"held-out images in {time.perf_counter() - start:.1f} s -> {paths.data_dir()}")


if __name__ == "__main__":
    run_stage(run_prepare)
