"""Throughput (images/s) of the `inception-fid` extractor at several network batch sizes: 32x32x3
uint8 images in, as the eval and reference stages feed it, through the resize to 299x299 and the
network, out 2048-d features (pipeline.evaluate.inception.CHUNK is the batch the stages use).
CUDA when present, else the CPU. Not a test: prints a table (needs the inception extra).

    python bench/inception.py                         # batch sizes sized for the device
    python bench/inception.py --batch-sizes 8 32 --images 64 --threads 2
    python bench/inception.py --json inception.json   # also write the numbers
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.evaluate import inception as inception_fid  # noqa: E402
from pipeline.app.params import parse_params  # noqa: E402
from pipeline.evaluate.features import extract_features, make_extractor  # noqa: E402


def parse_args() -> argparse.Namespace:
    cuda = torch.cuda.is_available()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[100, 250, 1000] if cuda else [8, 32])
    ap.add_argument("--images", type=int, default=2000 if cuda else 64, help="images timed per batch size")
    ap.add_argument("--size", type=int, default=32, help="side of the input images (resized to 299)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    return ap.parse_args()


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    params = parse_params({"eval": {"feature_extractor": "inception-fid"}})
    start = time.perf_counter()
    extractor = make_extractor(params)  # verifies the sha256, loads the TorchScript network
    load_s = time.perf_counter() - start
    device = "cuda" if extractor.cuda else "cpu"
    name = torch.cuda.get_device_name() if extractor.cuda else f"CPU, {torch.get_num_threads()} threads"
    images = torch.randint(0, 256, (args.images, 3, args.size, args.size), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(0))
    for _ in range(2):  # warm-up: TorchScript profiles and optimises its first calls
        extract_features(extractor, images[:min(8, args.images)], 8)
    results = {"device": name, "load_s": round(load_s, 2), "input": f"{args.size}x{args.size}x3 uint8",
               "images": args.images, "img_per_s": {}}
    print(f"inception-fid on {name}: loaded and verified in {load_s:.1f} s; {args.images} images "
          f"{args.size}x{args.size}x3 per batch size")
    print(f"{'batch':>6} {'img/s':>9} {'s':>7}")
    for bs in args.batch_sizes:
        inception_fid.CHUNK[device] = bs  # the network's own batch (it chunks larger ones)
        if extractor.cuda:
            torch.cuda.synchronize()
        t = time.perf_counter()
        feats = extract_features(extractor, images, bs)
        if extractor.cuda:
            torch.cuda.synchronize()
        dt = time.perf_counter() - t
        assert feats.shape == (args.images, 2048)
        results["img_per_s"][bs] = round(args.images / dt, 2)
        print(f"{bs:>6} {args.images / dt:>9.1f} {dt:>7.1f}")
    if device == "cuda":
        results["peak_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        print(f"peak GPU memory {results['peak_memory_gib']} GiB")
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
