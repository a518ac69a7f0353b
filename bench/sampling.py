"""DDIM sampling throughput (images/s) of the default U-Net (params.yaml) and the paper-size U-Net
(dim 64, dim_mults 1-2-4-8, 2 residual blocks, attention at 16 and 8, 32x32x3), on CUDA when
present (bf16 autocast, as eval samples) else the CPU. Not a test: prints a table.

    python bench/sampling.py                    # counts sized for the device
    python bench/sampling.py --paper-images 64 --paper-steps 20 --threads 2
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.app.params import load_params
from pipeline.core.config import ModelConfig  # noqa: E402
from pipeline.ddpm.diffusion import Diffusion, sample_images  # noqa: E402
from pipeline.ddpm.unet import build_unet  # noqa: E402
from pipeline.runtime.device import cpu_threads  # noqa: E402

PAPER = ModelConfig(dim=64, dim_mults=(1, 2, 4, 8), num_res_blocks=2, attn_resolutions=(16, 8), norm_groups=32)


def parse_args() -> argparse.Namespace:
    cuda = torch.cuda.is_available()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml", help="params file of the default U-Net")
    ap.add_argument("--default-images", type=int, default=1000 if cuda else 64)
    ap.add_argument("--default-steps", type=int, default=50 if cuda else 20)
    ap.add_argument("--paper-images", type=int, default=500 if cuda else 16)
    ap.add_argument("--paper-steps", type=int, default=50 if cuda else 10)
    ap.add_argument("--batch-size", type=int, default=500 if cuda else 64)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: LTH_THREADS, else every core)")
    ap.add_argument("--skip-paper", action="store_true", help="only the default U-Net")
    return ap.parse_args()


def bench(name: str, cfg: ModelConfig, shape: tuple[int, int, int], diffusion: Diffusion, images: int,
          steps: int, batch_size: int) -> dict:
    torch.manual_seed(0)
    model = build_unet(cfg, shape[0], shape[1]).to(diffusion.device).eval()
    sample_images(diffusion, model, min(2, images), shape, 2, batch_size, seed=0, progress=False)  # warm-up
    if diffusion.device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    sample_images(diffusion, model, images, shape, steps, batch_size, seed=0, progress=False)
    if diffusion.device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    return {"model": name, "params_M": sum(p.numel() for p in model.parameters()) / 1e6,
            "shape": "x".join(map(str, shape)), "images": images, "steps": steps,
            "batch": min(batch_size, images), "seconds": seconds, "img_s": images / seconds,
            "evals_s": images * steps / seconds}


def main() -> None:
    args = parse_args()
    params = load_params(args.params)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cpu":
        torch.set_num_threads(args.threads or cpu_threads())
    diffusion = Diffusion(params.diffusion, device)
    default_shape = (params.data.channels, params.data.image_size, params.data.image_size)
    rows = [bench("default", params.model, default_shape, diffusion, args.default_images, args.default_steps,
                  args.batch_size)]
    if not args.skip_paper:
        rows.append(bench("paper", PAPER, (3, 32, 32), diffusion, args.paper_images, args.paper_steps,
                          args.batch_size))
    where = torch.cuda.get_device_name() if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"DDIM sampling on {where}" + (" (bf16 autocast)" if device.type == "cuda" else " (fp32)"))
    print(f"{'model':<8} {'params':>8} {'image':>8} {'images':>7} {'steps':>6} {'batch':>6} "
          f"{'seconds':>8} {'img/s':>9} {'net evals/s':>12}")
    for r in rows:
        print(f"{r['model']:<8} {r['params_M']:>7.2f}M {r['shape']:>8} {r['images']:>7} {r['steps']:>6} "
              f"{r['batch']:>6} {r['seconds']:>8.2f} {r['img_s']:>9.2f} {r['evals_s']:>12.1f}")
    print("img/s scales ~1/steps: DDIM-50 throughput = net evals/s / 50")


if __name__ == "__main__":
    main()
