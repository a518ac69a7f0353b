"""Seconds per training step of the real loop, dense and 90 %-masked, on the default model.

Prints one line `dense <s/step> masked <s/step>` (medians over --repeats alternating runs). Made to be
run side by side against another checkout with farm-bench, e.g. to show that a refactor of the loop
keeps the step rate:

    farm-bench -n 5 --vs "sh -c 'cd /tmp/old && exec python /work/main/bench/train_step.py >>/tmp/b.txt'" \
        -- sh -c 'exec python bench/train_step.py >>/tmp/a.txt'

It runs against the layout of its working directory (pipeline.train.loop, or pipeline.training of the
checkouts before pipeline/ had subpackages).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path.cwd()))
try:
    from pipeline.core.config import DiffusionConfig, ModelConfig, TrainConfig
    from pipeline.ddpm.diffusion import Diffusion
    from pipeline.ddpm.unet import build_unet
    from pipeline.sparsity.masks import Mask
    from pipeline.sparsity.pruning import prune_round
    from pipeline.train.loop import train
except ImportError:  # a checkout from before the subpackages
    from pipeline.config import DiffusionConfig, ModelConfig, TrainConfig
    from pipeline.diffusion import Diffusion
    from pipeline.masks import Mask
    from pipeline.pruning import prune_round
    from pipeline.training import train
    from pipeline.unet import build_unet


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                    help="cpu: this process's CPU time, steadier than wall time on a shared machine "
                         "(with --threads 1 it is the step's compute time)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    # the default study's U-Net and batch (params.yaml), spelled out so both checkouts build the same one
    cfg = ModelConfig(dim=16, dim_mults=(1, 2, 2), num_res_blocks=1, attn_resolutions=(3,), norm_groups=8)
    base = build_unet(cfg, 1, 12)
    mask = prune_round(dict(base.named_parameters()), Mask.dense(base, exclude=("init_conv.*", "final_conv.*")),
                       "uniform", 0.9)
    state = {k: v.clone() for k, v in base.state_dict().items()}
    data = torch.randn(256, 1, 12, 12)
    diffusion = Diffusion(DiffusionConfig(), torch.device("cpu"))
    tcfg = TrainConfig(batch_size=32, warmup_steps=10, log_every=args.steps, checkpoint_every=10**9)

    def run(m) -> float:
        model = build_unet(cfg, 1, 12)
        model.load_state_dict(state)
        clock = time.process_time if args.clock == "cpu" else time.perf_counter
        t0 = clock()
        train(model, diffusion, data, tcfg, steps=args.steps, seed=0, mask=m, progress=False)
        return (clock() - t0) / args.steps

    run(None), run(mask)  # warm-up
    dense, masked = [], []
    for _ in range(args.repeats):
        dense.append(run(None))
        masked.append(run(mask))
    print(f"dense {statistics.median(dense):.5f} masked {statistics.median(masked):.5f}")


if __name__ == "__main__":
    main()
