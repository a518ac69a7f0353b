"""GPU smoke: the paths that have never run on a GPU, in one script within 10 minutes of GPU time.

    LTH_REQUIRE_CUDA=1 python bench/gpu_smoke.py          # on the GPU machine; prints a markdown table
    python bench/gpu_smoke.py --json smoke.json --md smoke.md
    python bench/gpu_smoke.py --cpu-dry-run               # the same plumbing at tiny size on the CPU

What it runs, in a scratch workspace (nothing in the repository is written):
1. a compiled retrain: the `init`, `dense` (eager), `prune`, `rewind` and `retrain` stages of the
   GPU smoke preset (the paper's U-Net, bf16, dropout 0.1, an 80 % mask) with LTH_COMPILE=1 for
   the retrain, checking that it really ran compiled, its losses are finite and the mask held;
2. the same retrain as a 2-rank DDP stage (torchrun, NCCL) where 2 GPUs are visible;
3. Inception FID features on CUDA (`inception-fid`, needs the inception extra), and the FID
   intervals on CUDA against the CPU, plus one paper-size interval computation (10 k x 2048,
   params/cifar10-paper.yaml's counts) timed on CUDA;
4. bench/gpu.py (paper U-Net: eager and compiled, dense and masked, sampling), each row labelled
   by what ran.
Without CUDA it stops at once (exit 2) unless --cpu-dry-run. Exit 1 when a check fails.
"""
from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.app.params import parse_params  # noqa: E402
from pipeline.core import paths  # noqa: E402
from pipeline.core.io import load_torch  # noqa: E402
from pipeline.runtime.compiling import compile_unavailable  # noqa: E402
from pipeline.runtime.distributed import cuda_missing_reason  # noqa: E402

_spec = importlib.util.spec_from_file_location("bench_gpu", ROOT / "bench" / "gpu.py")
gpu_bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gpu_bench)

# the CPU dry run: the tests' tiny U-Net (tests/conftest.py TINY) at dropout 0.1
DRY = {
    "data": {"dataset": "mnist5k", "image_size": 8, "channels": 1},
    "model": {"dim": 8, "dim_mults": [1, 2], "attn_resolutions": [4], "norm_groups": 4, "num_res_blocks": 1,
              "dropout": 0.1},
    "diffusion": {"timesteps": 100},
    "train": {"steps": 6, "batch_size": 8, "warmup_steps": 2, "checkpoint_every": 2, "log_every": 2},
    "rewind": {"mode": "checkpoint", "step": 2},
    "sparsity": {"schedule": "uniform", "rate": 0.8, "exclude": ["init_conv.*", "final_conv.*"]},
    "imp": {"seeds": [1, 2], "rounds": [{"k": 1, "prev": 0}]},
    "controls": {"rounds": []},
    "budget": {"seeds": []},
}
# on the GPU: the smoke preset, shortened; one 80 % prune round
GPU = {"train": {"steps": 200, "checkpoint_every": 100, "log_every": 20}, "rewind": {"step": 20},
       "sparsity": {"rate": 0.8}, "imp": {"seeds": [1, 2], "rounds": [{"k": 1, "prev": 0}]}}


def merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = merge(out.get(k, {}), v) if isinstance(v, dict) else v
    return out


class Table:
    def __init__(self):
        self.rows: list[dict] = []

    def add(self, check: str, ran: str, figure: str, verdict: str) -> None:
        self.rows.append({"check": check, "ran": ran, "figure": figure, "verdict": verdict})
        print(f"  {verdict:8s} {check}: {ran}; {figure}", flush=True)

    @property
    def failed(self) -> bool:
        return any(r["verdict"] == "FAIL" for r in self.rows)

    def markdown(self, header: str) -> str:
        lines = [header, "", "| check | what ran | figure | verdict |", "|---|---|---|---|"]
        lines += [f"| {r['check']} | {r['ran']} | {r['figure']} | {r['verdict']} |" for r in self.rows]
        return "\n".join(lines) + "\n"


def _env(**extra) -> dict:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    env.update(extra)
    return env


def retrain_checks(params, work: Path, dry: bool, table: Table) -> None:
    """The stages up to one compiled retrain, then the same retrain on 2 DDP ranks."""
    from stages.dense import run_dense
    from stages.init import run_init
    from stages.prepare import run_prepare
    from stages.prune import run_prune
    from stages.retrain import run_retrain
    from stages.rewind import run_rewind

    os.chdir(work)
    (work / "params.yaml").write_text(yaml.safe_dump(params.model_dump(mode="json")))
    with gpu_bench.compile_env("0"):  # not what is tested here: eager is quicker for a short run
        run_init(params)
        run_prepare(params)
        run_dense(params, 1)
    run_prune(params, 1, 1)
    run_rewind(params, 1, 1)
    want = not dry  # compiling on a CPU takes minutes: the dry run checks the plumbing eagerly
    steps = params.train.steps - params.start_step()
    start = time.perf_counter()
    with gpu_bench.compile_env("1" if want else "0"), gpu_bench.watch_compiles() as runners:
        run_retrain(params, 1, 1)
    seconds = time.perf_counter() - start
    ran = "compiled" if gpu_bench.ran_compiled(runners) else ("eager (compile fell back)" if want else "eager")
    ticket = load_torch(paths.train_dir(1, 1) / "model.pt")
    mask = ticket["mask"]
    held = all(torch.count_nonzero(ticket[part][n][~mask[n].bool()]) == 0 for part in ("model", "ema") for n in mask)
    with open(paths.train_dir(1, 1) / "loss.csv", newline="") as f:
        losses = [float(row["loss"]) for row in csv.DictReader(f)]
    finite = bool(losses) and all(math.isfinite(x) for x in losses)
    sparsity = 1 - sum(int(m.sum()) for m in mask.values()) / sum(m.numel() for m in mask.values())
    ok = finite and held and (ran == "compiled" or dry)
    table.add(f"retrain stage, {steps} steps at batch {params.train.batch_size}, mask {sparsity:.0%}, "
              f"dropout {params.model.dropout}", ran,
              f"{seconds:.0f} s with compile; last loss {losses[-1] if losses else float('nan'):.4f}; "
              f"pruned weights zero: {held}",
              "ok" if ok else "FAIL")

    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if not dry and gpus < 2:
        table.add("retrain stage on 2 DDP ranks", "skipped", f"{gpus} GPU visible", "skipped")
        return
    one = ticket["model"]
    paths.checkpoint_path(1, 1).unlink()  # else the 2-rank run resumes the finished checkpoint
    (paths.train_dir(1, 1) / "model.pt").unlink()
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "stages.retrain", "1", "1"], cwd=work, capture_output=True,
                          text=True, timeout=400, env=_env(LTH_NPROC_PER_NODE="2", LTH_COMPILE="0"))
    seconds = time.perf_counter() - start
    backend = "gloo (CPU)" if dry else "NCCL"
    if proc.returncode != 0 or not (paths.train_dir(1, 1) / "model.pt").exists():
        tail = " ".join((proc.stderr or proc.stdout).strip().splitlines()[-2:])[:200].replace("|", "/")
        table.add("retrain stage on 2 DDP ranks", f"torchrun, {backend}, eager", f"exit {proc.returncode}: {tail}", "FAIL")
        return
    two = load_torch(paths.train_dir(1, 1) / "model.pt")["model"]
    diff = max(float((two[k].float() - one[k].float()).abs().max()) for k in one)
    table.add("retrain stage on 2 DDP ranks", f"torchrun, {backend}, eager",
              f"{seconds:.0f} s with start-up; max abs(w2 - w1) vs the 1-rank {ran} run {diff:.2g}", "ok")


def fid_checks(params, dry: bool, table: Table, device: torch.device) -> None:
    """Inception features on the device, the FID intervals there against the CPU, and one eval's
    intervals at the paper's size timed there."""
    from pipeline.data.sources import decode
    from pipeline.evaluate.features import extract_features, make_extractor
    from pipeline.evaluate.fid import fid, fid_statistics
    from pipeline.evaluate.intervals import Reference, fid_uncertainty

    inception = parse_params(merge(params.model_dump(mode="json"), {"eval": {"feature_extractor": "inception-fid"}}))
    n = 24 if dry else 5000
    # the CPU side of the comparisons works on the first `dims` feature dimensions: a 2048-d interval
    # costs minutes on a CPU, and the check is that the device path computes what the CPU path does
    dims = 8 if dry else 256
    images, _ = decode(params.data)  # standalone: no prepare stage ran
    start = time.perf_counter()
    try:
        extractor = make_extractor(inception)
    except Exception as err:  # noqa: BLE001 - a missing extra is a finding, not a crash
        table.add("Inception FID features", "not loaded", f"{type(err).__name__}: {str(err)[:160]}", "FAIL")
        return
    feats = extract_features(extractor, images[:n], 250 if not dry else 8)
    seconds = time.perf_counter() - start
    where = "CUDA" if extractor.cuda else "CPU"
    value = fid(feats[: n // 2, :dims if dry else None], feats[n // 2:, :dims if dry else None])
    table.add(f"Inception FID features, {n:,} images {tuple(images.shape[1:])}", f"inception-fid on {where}",
              f"{n / seconds:,.0f} img/s with loading; FID half vs half {value:.2f}",
              "ok" if math.isfinite(value) and (extractor.cuda or dry) else "FAIL")

    # the same interval computation on the device and on the CPU
    stats = fid_statistics(feats[: n // 2, :dims])
    ref = Reference.from_statistics(stats["mu"], stats["sigma"])
    counts = dict(resamples=20, level=0.95, inf_sizes=3, inf_subsets=4, inf_min_fraction=0.5, inf_resamples=5,
                  seed=1, splits=10)
    cpu = fid_uncertainty(ref, feats[n // 2:, :dims], **counts)
    dev = fid_uncertainty(ref, feats[n // 2:, :dims], **counts, device=device)
    pairs = [(cpu.fid, dev.fid), (cpu.fid_inf, dev.fid_inf), *zip(cpu.fid_ci, dev.fid_ci),
             *zip(cpu.replicates, dev.replicates)]
    worst = max(abs(a - b) / max(abs(a), 1.0) for a, b in pairs)
    table.add(f"FID intervals on the device vs the CPU ({n // 2:,} x {dims})", f"{device.type}",
              f"max relative difference {worst:.1e}",
              "ok" if worst < 1e-3 else "FAIL")

    # one eval's intervals at the paper preset's size and counts
    paper = yaml.safe_load((ROOT / "params" / "cifar10-paper.yaml").read_text())["eval"]
    big_n, dim = (200, 16) if dry else (paper["num_samples"], 2048)
    gen = torch.Generator().manual_seed(0)
    mixing = torch.randn(dim, dim, generator=gen) / dim ** 0.5
    real, fake = torch.randn(big_n, dim, generator=gen) @ mixing, torch.randn(big_n, dim, generator=gen) @ mixing + 0.1
    real_stats = fid_statistics(real)
    start = time.perf_counter()
    fid_uncertainty(Reference.from_statistics(real_stats["mu"], real_stats["sigma"]), fake,
                    resamples=paper["fid_bootstrap"], level=0.95, inf_sizes=5, inf_subsets=paper["fid_inf_subsets"],
                    inf_min_fraction=0.5, inf_resamples=paper["fid_inf_bootstrap"], seed=1,
                    splits=paper["fid_splits"], device=device)
    seconds = time.perf_counter() - start
    fids = 1 + paper["fid_bootstrap"] + 2 * paper["fid_splits"] + 5 * paper["fid_inf_subsets"] * (1 + paper["fid_inf_bootstrap"])
    table.add(f"one eval's FID intervals at {big_n:,} x {dim} (paper preset's counts: {fids:,} distances)",
              f"{device.type}", f"{seconds:.1f} s per eval", "ok")


def bench_rows(dry: bool, table: Table) -> None:
    argv = ["--size", "tiny", "--steps", "2", "--compile", "0", "--threads", "1"] if dry else ["--steps", "20"]
    results = gpu_bench.main(argv)
    for key, r in results["train"].items():
        if isinstance(r, dict):
            table.add(f"bench/gpu.py training {key.split()[-1]}, batch {results['batch']}", r["ran"],
                      f"{r['img_s']:,.0f} img/s" + (f", peak {r['peak_gib']:.1f} GiB" if r["peak_gib"] else ""),
                      "FAIL" if "fell back" in r["ran"] else "ok")
        else:
            table.add(f"bench/gpu.py {key}", key.split()[0], f"{r:.3f}", "ok")
    for key, r in results["sampling"].items():
        table.add(f"bench/gpu.py sampling DDIM-{results['sample_steps']}, batch {results['sample_batch']}", r["ran"],
                  f"{r['img_s']:,.0f} img/s", "FAIL" if "fell back" in r["ran"] else "ok")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cpu-dry-run", action="store_true", help="tiny sizes on the CPU: test the script itself")
    ap.add_argument("--skip-bench", action="store_true", help="leave out bench/gpu.py (about 4 of the 10 minutes)")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--md", type=Path, default=None, help="also write the markdown table here")
    args = ap.parse_args(argv)
    cuda = torch.cuda.is_available()
    if not cuda and not args.cpu_dry_run:
        print(f"error: the GPU smoke needs CUDA: {cuda_missing_reason()} (torch {torch.__version__}, "
              f"torch.version.cuda={torch.version.cuda}); --cpu-dry-run tests the script on the CPU", file=sys.stderr)
        return 2
    dry = args.cpu_dry_run  # tiny sizes; on a GPU machine the stages still use its GPU
    device = torch.device("cuda" if cuda else "cpu")
    name = torch.cuda.get_device_name(0) if cuda else "CPU (dry run)"
    header = (f"GPU smoke on {name} x {torch.cuda.device_count() if device.type == 'cuda' else 0}, torch "
              f"{torch.__version__}, CUDA {torch.version.cuda}; compile: {compile_unavailable(device) or 'available'}")
    print(header, flush=True)
    table = Table()
    base = DRY if dry else merge(yaml.safe_load((ROOT / "params" / "gpu-smoke.yaml").read_text()), GPU)
    params = parse_params(base)
    started, cwd = time.perf_counter(), os.getcwd()
    with tempfile.TemporaryDirectory(prefix="lth-gpu-smoke-") as tmp:
        try:
            retrain_checks(params, Path(tmp), dry, table)
            fid_checks(params, dry, table, device)
        finally:
            os.chdir(cwd)
    if not args.skip_bench:
        bench_rows(dry, table)
    text = table.markdown(header + f"; {time.perf_counter() - started:.0f} s in all")
    print("\n" + text)
    if args.md is not None:
        args.md.write_text(text)
    if args.json is not None:
        args.json.write_text(json.dumps({"header": header, "rows": table.rows}, indent=2) + "\n")
    return 1 if table.failed else 0


if __name__ == "__main__":
    sys.exit(main())
