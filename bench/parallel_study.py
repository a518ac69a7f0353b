"""Wall time of a whole study from an empty cache: `dvc repro` against `lth-diffusion repro -j auto`.

    python bench/parallel_study.py                          # the default study (about 40 min here)
    python bench/parallel_study.py --params params/x.yaml   # another study, e.g. a tiny one to try the bench
    python bench/parallel_study.py --json bench.json --keep /tmp/clones

Each way runs in its own fresh `git clone` of this repository's HEAD (no DVC cache, no run-cache),
one after the other, with this interpreter's environment. `dvc repro` gets the machine's default
threads (every core, as a user would run it); the runner splits the cores between its workers.
Prints both wall times and their ratio, and how many outputs came out byte-identical (CPU float
results can differ in their last bits with the thread count, so a few may not).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def clone(dest: Path, params: Path | None) -> None:
    subprocess.run(["git", "clone", "-q", "--no-hardlinks", str(REPO), str(dest)], check=True)
    if params is not None:
        shutil.copy(params, dest / "params.yaml")


def environment(root: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("LTH_THREADS", None)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(root)
    env["TQDM_DISABLE"] = "1"
    return env


def timed(cmd: list[str], root: Path, log: Path) -> float:
    start = time.monotonic()
    with open(log, "w") as out:
        proc = subprocess.run(cmd, cwd=root, env=environment(root), stdout=out, stderr=subprocess.STDOUT)
    seconds = time.monotonic() - start
    if proc.returncode:
        sys.exit(f"{' '.join(cmd)} failed in {root} (exit {proc.returncode}); see {log}")
    return seconds


def outputs(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for folder in ("artifacts", "reports") for p in sorted((root / folder).rglob("*"))
            if p.is_file() and "checkpoints" not in p.parts}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", type=Path, help="params file for both clones (default: the committed one)")
    ap.add_argument("--jobs", default="auto", help="the runner's -j (default auto)")
    ap.add_argument("--keep", type=Path, help="keep the two clones in this folder")
    ap.add_argument("--json", type=Path, help="write the figures here")
    args = ap.parse_args(argv)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                           capture_output=True, text=True).stdout.strip()
    if dirty:
        print("note: uncommitted changes are not in the clones; the bench runs HEAD", file=sys.stderr)
    base = args.keep or Path(tempfile.mkdtemp(prefix="parallel-study-"))
    base.mkdir(parents=True, exist_ok=True)
    serial, parallel = base / "serial", base / "parallel"
    for root in (serial, parallel):
        if root.exists():
            shutil.rmtree(root)
        clone(root, args.params)
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    print(f"commit {head}; clones in {base}", flush=True)
    t_serial = timed([sys.executable, "-m", "dvc", "repro"], serial, base / "serial.log")
    print(f"dvc repro:                    {t_serial:8.0f} s", flush=True)
    t_parallel = timed([sys.executable, "-m", "pipeline.app.cli", "repro", "-j", args.jobs], parallel,
                       base / "parallel.log")
    print(f"lth-diffusion repro -j {args.jobs:<5s} {t_parallel:8.0f} s", flush=True)
    a, b = outputs(serial), outputs(parallel)
    same = sum(a[k] == b.get(k) for k in a)
    stages = len(json.loads((parallel / "logs" / "repro" / "summary.json").read_text())["stages"])
    result = {"commit": head, "stages": stages, "dvc_repro_s": round(t_serial, 1),
              "parallel_s": round(t_parallel, 1), "ratio": round(t_parallel / t_serial, 3),
              "jobs": args.jobs, "outputs": len(a), "byte_identical": same, "cores": len(os.sched_getaffinity(0))}
    print(f"ratio: {result['ratio']:.2f} ({stages} stages, {result['cores']} cores); "
          f"{same}/{len(a)} outputs byte-identical")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    if not args.keep:
        shutil.rmtree(base)
    return result


if __name__ == "__main__":
    main()
