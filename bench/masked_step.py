"""Masked vs dense training-step time (the ratio the IMP issue targets: <= 1.05).

Times the real training loop (pipeline.train.loop.train) with and without a 90 %-sparse mask,
alternating runs so drift hits both alike. CUDA when present, else CPU.

    python bench/masked_step.py                 # default U-Net (params.yaml) and the paper's U-Net
    python bench/masked_step.py --steps 30 --repeats 5
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from pipeline.app.params import load_params
from pipeline.core.config import DiffusionConfig, ModelConfig, TrainConfig
from pipeline.ddpm.diffusion import Diffusion
from pipeline.sparsity.masks import Mask
from pipeline.sparsity.pruning import prune_round
from pipeline.runtime.device import cpu_threads
from pipeline.train.loop import train
from pipeline.runtime.device import pick_device
from pipeline.ddpm.unet import build_unet


def time_runs(cfg: ModelConfig, channels: int, size: int, batch: int, steps: int, repeats: int,
              device: torch.device) -> tuple[float, float]:
    torch.manual_seed(0)
    base = build_unet(cfg, channels, size).to(device)
    mask = Mask.dense(base, exclude=("init_conv.*", "final_conv.*"))
    mask = prune_round(dict(base.named_parameters()), mask, "uniform", 0.9)
    data = torch.randn(max(batch * 4, 64), channels, size, size, device=device)
    diffusion = Diffusion(DiffusionConfig(), device)
    tcfg = TrainConfig(batch_size=batch, log_every=max(steps, 1), checkpoint_every=10**9)
    state = {k: v.clone() for k, v in base.state_dict().items()}

    def run(m):
        model = build_unet(cfg, channels, size).to(device)
        model.load_state_dict(state)
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        train(model, diffusion, data, tcfg, steps=steps, seed=0, mask=m, progress=False)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return (time.perf_counter() - t0) / steps

    run(None), run(mask)  # warm-up (allocator, kernels)
    dense, masked = [], []
    for _ in range(repeats):
        dense.append(run(None))
        masked.append(run(mask))
    return statistics.median(dense), statistics.median(masked)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--paper-batch", type=int, default=None, help="batch for the paper U-Net (default 128 on CUDA, 4 on CPU)")
    args = ap.parse_args()
    device = pick_device()
    params = load_params()
    if device.type == "cpu":
        torch.set_num_threads(cpu_threads())
    paper = ModelConfig(dim=64, dim_mults=(1, 2, 4, 8), num_res_blocks=2, attn_resolutions=(16, 8), norm_groups=32)
    cases = [
        ("default (params.yaml)", params.model, params.data.channels, params.data.image_size, params.train.batch_size),
        ("paper 35.3M, 32x32x3", paper, 3, 32, args.paper_batch or (128 if device.type == "cuda" else 4)),
    ]
    print(f"device: {torch.cuda.get_device_name() if device.type == 'cuda' else f'cpu ({torch.get_num_threads()} threads)'}")
    print(f"{'model':24s} {'batch':>5s} {'dense s/step':>13s} {'masked s/step':>14s} {'ratio':>7s}")
    for name, cfg, ch, size, batch in cases:
        steps = args.steps if device.type == "cuda" or size <= 16 else max(3, args.steps // 4)
        d, m = time_runs(cfg, ch, size, batch, steps, args.repeats, device)
        print(f"{name:24s} {batch:5d} {d:13.4f} {m:14.4f} {m / d:7.3f}")


if __name__ == "__main__":
    main()
