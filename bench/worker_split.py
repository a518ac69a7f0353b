"""Throughput of the training step: 1 worker × N threads against N workers × 1 thread, on this machine.

    python bench/worker_split.py                 # N = the cores this process may use
    python bench/worker_split.py --steps 300 --workers 2

Each worker is its own process running the real training loop (pipeline.train.loop.train) on the
default study's U-Net and batch, as a `dense` stage does; the processes of one layout start together.
Prints steps/s of each worker and of the layout as a whole, and the ratio the parallel runner
(`lth-diffusion repro -j N`, which gives each worker cores / N threads) relies on.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

WORKER = r'''
import json, sys, time, torch
from pipeline.core.config import DiffusionConfig, ModelConfig, TrainConfig
from pipeline.ddpm.diffusion import Diffusion
from pipeline.ddpm.unet import build_unet
from pipeline.train.loop import train
steps, threads = int(sys.argv[1]), int(sys.argv[2])
torch.set_num_threads(threads)
torch.manual_seed(0)
cfg = ModelConfig(dim=16, dim_mults=(1, 2, 2), num_res_blocks=1, attn_resolutions=(3,), norm_groups=8)
model = build_unet(cfg, 1, 12)
data = torch.randn(512, 1, 12, 12)
diffusion = Diffusion(DiffusionConfig(), torch.device("cpu"))
tcfg = TrainConfig(batch_size=32, warmup_steps=10, log_every=steps, checkpoint_every=10**9)
train(model, diffusion, data, tcfg, steps=10, seed=0, progress=False)  # warm-up: allocator, first optimizer step
start = time.perf_counter()
train(model, diffusion, data, tcfg, steps=steps, seed=1, progress=False)
print(json.dumps({"steps_per_s": steps / (time.perf_counter() - start)}))
'''


def layout(workers: int, threads: int, steps: int) -> list[float]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": str(threads)}
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(steps), str(threads)], env=env, cwd=REPO,
                              stdout=subprocess.PIPE, text=True) for _ in range(workers)]
    rates = []
    for proc in procs:
        out, _ = proc.communicate()
        if proc.returncode:
            sys.exit(f"a worker failed (exit {proc.returncode})")
        rates.append(json.loads(out.strip().splitlines()[-1])["steps_per_s"])
    return rates


def main(argv: list[str] | None = None) -> dict:
    cores = len(os.sched_getaffinity(0))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, default=cores, help=f"N (default: {cores}, the available cores)")
    ap.add_argument("--steps", type=int, default=200, help="timed steps per worker")
    ap.add_argument("--repeats", type=int, default=2, help="alternating repeats of both layouts")
    args = ap.parse_args(argv)
    n = args.workers
    one, many = [], []
    for _ in range(args.repeats):
        one.append(sum(layout(1, n, args.steps)))
        many.append(sum(layout(n, 1, args.steps)))
        time.sleep(0.5)
    best_one, best_many = max(one), max(many)
    print(f"machine: {cores} cores; default U-Net, batch 32, {args.steps} steps per worker, best of {args.repeats}")
    print(f"1 worker  x {n} threads: {best_one:6.1f} steps/s")
    print(f"{n} workers x 1 thread : {best_many:6.1f} steps/s in all ({best_many / n:.1f} each)")
    print(f"ratio (N x 1 / 1 x N): {best_many / best_one:.2f}")
    return {"one_worker": best_one, "many_workers": best_many, "ratio": best_many / best_one}


if __name__ == "__main__":
    main()
