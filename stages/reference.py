"""DVC stage 'reference': features and statistics of every real training image (computed once),
and the FID a perfect generator scores on training and on held-out images.

Usage: python -m stages.reference
"""
from __future__ import annotations

import time

import torch
from tqdm.auto import tqdm

from pipeline.app.stage import run_stage
from pipeline.core import paths
from pipeline.core.config import Params
from pipeline.core.io import save_json, save_torch
from pipeline.data.prepared import load_uint8
from pipeline.evaluate.features import extract_features, make_extractor
from pipeline.evaluate.fid import fid_statistics
from pipeline.evaluate.reference import data_sha256, extractor_digest, heldout_floor, real_floor
from pipeline.runtime.device import configure_threads, pick_device


def run_reference(params: Params) -> None:
    configure_threads()
    extractor = make_extractor(params, paths.classifier_path())
    images, _ = load_uint8(params.data)
    start = time.perf_counter()
    feats = extract_features(extractor, images, params.eval.batch_size, progress=True)
    stats = fid_statistics(feats)
    floor = real_floor(params, feats, stats)
    held_images, _ = load_uint8(params.data, train=False)
    floor.update(heldout_floor(params, extract_features(extractor, held_images, params.eval.batch_size), stats,
                               device=pick_device()))  # the intervals' matrix work on the GPU when there is one
    save_torch({"features": feats, "mu": torch.from_numpy(stats["mu"]), "sigma": torch.from_numpy(stats["sigma"])},
               paths.reference_dir() / "stats.pt")
    info = {"feature_extractor": extractor.name, "feature_layer": extractor.layer,
            "feature_dim": int(feats.shape[1]), "num_images": len(images), "dataset": params.data.dataset,
            "image_size": params.data.image_size, "channels": params.data.channels,
            "data_sha256": data_sha256(images.numpy().tobytes()), "extractor_sha256": extractor_digest(params),
            **floor}  # no timings: eval depends on this file, so it must be byte-stable
    save_json(info, paths.reference_dir() / "reference.json")
    tqdm.write(f"reference: {extractor.name} features ({info['feature_dim']}-d) of all {len(images):,} "
               f"training images in {time.perf_counter() - start:.1f} s -> {paths.reference_dir()}; a perfect generator's "
               f"FID at {floor['floor_num_samples']} samples: {floor['fid_real_floor']:.2f} (training images), "
               f"{floor.get('fid_heldout_floor', float('nan')):.2f} (held-out images)")


if __name__ == "__main__":
    run_stage(run_reference)
