"""One-command GPU benchmark of the paper's U-Net: training img/s dense and masked (90 % sparse),
eager and compiled, DDIM sampling img/s, peak memory. About 3-5 minutes on one H100/H200 (well
under 8); `--size tiny` runs the same code on the CPU in seconds (CI does).

    python bench/gpu.py                          # paper U-Net, bf16, batch 256, DDIM-100 at batch 1000
    python bench/gpu.py --batch 128 --sample-batch 500
    python bench/gpu.py --size tiny              # default on the CPU: a smoke run of the same code
    LTH_REQUIRE_CUDA=1 python bench/gpu.py       # exit 2 at once if CUDA is unusable

Without CUDA it refuses --size paper (exit 2). Each row says what ran: compiled, eager, or eager
because the compile fell back (a missing C compiler or Python headers, a Triton error).
    python bench/gpu.py --json bench.json        # also write the numbers

It times the pipeline's own loop (pipeline.train.loop.train, sample_images), so the numbers are what
the stages get. A timed window starts after a warm-up window (allocator, cuDNN autotune, compile).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.runtime.compiling import ENV_COMPILE, compile_unavailable  # noqa: E402
from pipeline.core.config import DiffusionConfig, ModelConfig, TrainConfig  # noqa: E402
from pipeline.ddpm.diffusion import Diffusion, sample_images  # noqa: E402
from pipeline.sparsity.masks import Mask  # noqa: E402
from pipeline.sparsity.pruning import prune_round  # noqa: E402
from pipeline.train.loop import train  # noqa: E402
from pipeline.runtime.device import pick_device  # noqa: E402
from pipeline.runtime.distributed import LaunchError, cuda_missing_reason, require_cuda_if_asked  # noqa: E402
from pipeline.ddpm.unet import build_unet  # noqa: E402

MODELS = {
    # the paper's 35.7 M-parameter DDPM U-Net at 32x32x3 (params/cifar10-paper.yaml)
    "paper": (ModelConfig(dim=64, dim_mults=(1, 2, 4, 8), num_res_blocks=2, attn_resolutions=(16, 8),
                          dropout=0.1, norm_groups=8), 3, 32),
    # the same architecture, small enough for a CPU smoke run
    "tiny": (ModelConfig(dim=8, dim_mults=(1, 2), num_res_blocks=1, attn_resolutions=(4,), norm_groups=4), 1, 8),
}
ANCHORS = "anchors (DESIGN.md, H200, paper U-Net, bf16): eager 3,381 img/s, compiled 5,147 img/s at batch 256; " \
          "DDIM-100 compiled 586 img/s at batch 1,000. Targets: >= 6,000 img/s, masked/dense <= 1.03, sampling >= 1,000 img/s"


def parse_args(argv=None) -> argparse.Namespace:
    cuda = torch.cuda.is_available()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", choices=sorted(MODELS), default="paper" if cuda else "tiny")
    ap.add_argument("--batch", type=int, default=256 if cuda else 8, help="training batch")
    ap.add_argument("--steps", type=int, default=40 if cuda else 3, help="timed training steps (after as many warm-up steps)")
    ap.add_argument("--sample-batch", type=int, default=1000 if cuda else 4)
    ap.add_argument("--sample-steps", type=int, default=100 if cuda else 2, help="DDIM steps")
    ap.add_argument("--sparsity", type=float, default=0.9)
    ap.add_argument("--compile", choices=["auto", "1", "0"], default="auto",
                    help="time compiled runs too: auto = on CUDA only (compiling on a CPU takes minutes)")
    ap.add_argument("--threads", type=int, default=2, help="CPU threads (ignored on CUDA)")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    return ap.parse_args(argv)


@contextlib.contextmanager
def compile_env(value: str):
    old = os.environ.get(ENV_COMPILE)
    os.environ[ENV_COMPILE] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(ENV_COMPILE, None)
        else:
            os.environ[ENV_COMPILE] = old


@contextlib.contextmanager
def watch_compiles():
    """Every CompiledOrEager the loop and the sampler make while inside; `ran_compiled(runners)` then
    says whether they really ran compiled (a failed compile falls back to eager with a warning)."""
    import pipeline.ddpm.diffusion as diffusion_mod
    import pipeline.train.loop as loop_mod

    runners, saved = [], (loop_mod.maybe_compile, diffusion_mod.maybe_compile)

    def spy(*args, **kwargs):
        runners.append(saved[0](*args, **kwargs))
        return runners[-1]
    loop_mod.maybe_compile = diffusion_mod.maybe_compile = spy
    try:
        yield runners
    finally:
        loop_mod.maybe_compile, diffusion_mod.maybe_compile = saved


def ran_compiled(runners) -> bool:
    return bool(runners) and all(r.is_compiled for r in runners)


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def _peak_gib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None


def time_training(cfg, channels, size, batch, steps, mask_sparsity, compiled, device) -> dict:
    torch.manual_seed(0)
    model = build_unet(cfg, channels, size).to(device)
    mask = None
    if mask_sparsity:
        mask = Mask.dense(model, exclude=("init_conv.*", "final_conv.*"))
        mask = prune_round(dict(model.named_parameters()), mask, "uniform", mask_sparsity).to(device)
    data = torch.rand(max(4 * batch, 256), channels, size, size, device=device) * 2 - 1
    diffusion = Diffusion(DiffusionConfig(), device)
    # two log windows: the first warms up (and compiles), the second is timed between host syncs
    tcfg = TrainConfig(batch_size=batch, lr=2e-4, warmup_steps=0, log_every=steps, checkpoint_every=10**9,
                       ema_decay=0.9999)
    _reset_peak(device)
    marks = {}

    def clock(step: int, _model) -> None:  # host sync only at the two timing marks
        if step in (steps, 2 * steps):
            if device.type == "cuda":
                torch.cuda.synchronize()
            marks[step] = time.perf_counter()

    with compile_env("1" if compiled else "0"), watch_compiles() as runners:
        train(model, diffusion, data, tcfg, steps=2 * steps, seed=0, mask=mask, progress=False, after_step=clock)
    return {"img_s": steps * batch / (marks[2 * steps] - marks[steps]), "peak_gib": _peak_gib(device),
            "compiled": ran_compiled(runners)}


def time_sampling(cfg, channels, size, batch, steps, compiled, device) -> dict:
    torch.manual_seed(0)
    model = build_unet(cfg, channels, size).to(device).eval()
    diffusion = Diffusion(DiffusionConfig(), device)
    shape = (channels, size, size)
    _reset_peak(device)
    with compile_env("1" if compiled else "0"), watch_compiles() as runners:
        sample_images(diffusion, model, batch, shape, 2, batch, seed=0, progress=False)  # warm-up / compile
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        sample_images(diffusion, model, batch, shape, steps, batch, seed=1, progress=False)  # ends on a host copy
        seconds = time.perf_counter() - start
    return {"img_s": batch / seconds, "peak_gib": _peak_gib(device), "compiled": ran_compiled(runners)}


def ran_label(asked_compiled: bool, result: dict) -> str:
    """What a row measured: 'compiled', 'eager', or 'eager (compile fell back)'."""
    if result["compiled"]:
        return "compiled"
    return "eager (compile fell back)" if asked_compiled else "eager"


def main(argv=None) -> dict:
    args = parse_args(argv)
    device = pick_device()
    try:
        require_cuda_if_asked()
    except LaunchError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2)
    if args.size == "paper" and device.type != "cuda":
        # the 35 M U-Net on a CPU would run for hours and print numbers nobody wants
        print(f"error: --size paper needs CUDA ({cuda_missing_reason()}; torch.version.cuda="
              f"{torch.version.cuda}); use --size tiny for a CPU smoke run", file=sys.stderr)
        raise SystemExit(2)
    if device.type == "cpu":
        torch.set_num_threads(args.threads)
    else:
        torch.backends.cudnn.benchmark = True
    cfg, channels, size = MODELS[args.size]
    modes = [False]
    want_compiled = args.compile == "1" or (args.compile == "auto" and device.type == "cuda")
    why_not = compile_unavailable(device) if want_compiled else "off (--compile 0, or auto on a CPU)"
    if want_compiled and why_not is None:
        modes.append(True)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    n_params = sum(p.numel() for p in build_unet(cfg, channels, size).parameters())
    print(f"device: {name}; torch {torch.__version__}; {'bf16 autocast' if device.type == 'cuda' else 'fp32'}")
    print(f"model: {args.size} U-Net, {n_params / 1e6:.2f} M parameters, {size}x{size}x{channels}")
    if len(modes) == 1:
        print(f"compiled runs: skipped ({why_not})")
    results: dict = {"device": name, "torch": torch.__version__, "model": args.size, "parameters": n_params,
                     "batch": args.batch, "sample_batch": args.sample_batch, "sample_steps": args.sample_steps,
                     "sparsity": args.sparsity, "train": {}, "sampling": {}}
    # rows are keyed by the mode asked for and labelled by what ran (a failed compile runs eagerly)
    print(f"\n{'training':<40} {'batch':>6} {'img/s':>10} {'peak GiB':>9}")
    for compiled in modes:
        kind = "compiled" if compiled else "eager"
        for label, sparsity in (("dense", 0.0), (f"masked {args.sparsity:.0%}", args.sparsity)):
            r = time_training(cfg, channels, size, args.batch, args.steps, sparsity, compiled, device)
            r["ran"] = ran_label(compiled, r)
            results["train"][f"{kind} {label.split()[0]}"] = r
            peak = "-" if r["peak_gib"] is None else f"{r['peak_gib']:.2f}"
            print(f"{r['ran'] + ' ' + label:<40} {args.batch:>6} {r['img_s']:>10.1f} {peak:>9}", flush=True)
        dense, masked = results["train"][f"{kind} dense"], results["train"][f"{kind} masked"]
        results["train"][f"{kind} masked/dense step time"] = dense["img_s"] / masked["img_s"]
        ran = dense["ran"] if dense["ran"] == masked["ran"] else f"{dense['ran']} / {masked['ran']}"
        print(f"{ran + ' masked/dense step time':<52} {dense['img_s'] / masked['img_s']:>10.3f}")
    print(f"\n{'sampling (DDIM-' + str(args.sample_steps) + ')':<40} {'batch':>6} {'img/s':>10} {'peak GiB':>9}")
    for compiled in modes:
        kind = "compiled" if compiled else "eager"
        r = time_sampling(cfg, channels, size, args.sample_batch, args.sample_steps, compiled, device)
        r["ran"] = ran_label(compiled, r)
        results["sampling"][kind] = r
        peak = "-" if r["peak_gib"] is None else f"{r['peak_gib']:.2f}"
        print(f"{r['ran']:<40} {args.sample_batch:>6} {r['img_s']:>10.1f} {peak:>9}", flush=True)
    if args.size == "paper":
        print("\n" + ANCHORS)
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()
