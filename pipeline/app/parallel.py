"""The `repro` command: pick the workers and their share of the machine, plan, run, report."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Sequence

from rich.console import Console

from pipeline.app import dag
from pipeline.app.executors import LocalExecutor, Share, SubmititExecutor
from pipeline.app.live import View, print_summary
from pipeline.app.runner import LOG_DIR, run_plan
from pipeline.runtime.device import ENV_THREADS, available_cores, cpu_threads


def visible_gpus() -> tuple[int, ...]:
    """GPU indices this machine offers (torch is imported only here, once per run)."""
    import torch

    return tuple(range(torch.cuda.device_count())) if torch.cuda.is_available() else ()


def choose_workers(jobs: str, cores: int, gpus: int, width: int) -> int:
    """--jobs as a number, or auto: one per GPU on a GPU machine, else one per core, never more
    than the plan can keep busy."""
    if jobs != "auto":
        try:
            n = int(jobs)
        except ValueError:
            raise ValueError(f"--jobs {jobs!r}: expected a positive integer or auto") from None
        if n < 1:
            raise ValueError(f"--jobs {jobs!r}: expected a positive integer or auto")
        return n
    return max(1, min(gpus or cores, max(width, 1)))


def thread_share(cores: int, workers: int, threads: Optional[int]) -> int:
    """CPU threads per stage: --threads, else LTH_THREADS when the user set it, else the cores split
    evenly (two 1-thread stages beat one 2-thread stage on two cores)."""
    if threads:
        return threads
    if os.environ.get(ENV_THREADS, "").strip():
        return cpu_threads()  # the stages' own reading of it: a bad value is one line, here and there
    return max(1, cores // workers)


def repro(root: Path, targets: Sequence[str], jobs: str = "auto", executor: str = "local",
          threads: Optional[int] = None, force: bool = False, dry: bool = False,
          console: Optional[Console] = None) -> int:
    console = console or Console(stderr=True)
    if not (root / "dvc.yaml").exists():
        raise ValueError(f"{root}: no dvc.yaml here (run from the repository root or pass --root)")
    from dvc.exceptions import DvcException

    from pipeline.app.params import load_params

    params = load_params(root / "params.yaml")  # every rule, shapes included: one line now, not per stage later
    try:
        plan = dag.from_dvc(root, targets, force=force)
    except DvcException as err:
        raise ValueError(f"dvc: {err}") from None
    if executor == "local":
        gpus = visible_gpus()
        cores = available_cores()
        workers = choose_workers(jobs, cores, len(gpus), plan.width())
        share = Share(threads=thread_share(cores, workers, threads), gpus=gpus)
        runner = LocalExecutor(root, workers, share, force=force)
        where = (f"{workers} worker{'s' * (workers > 1)} × {share.threads} thread{'s' * (share.threads > 1)}"
                 + (f", one GPU each of {len(gpus)}" if gpus else ""))
    else:
        cluster = params.cluster
        workers = cluster.max_jobs if jobs == "auto" else choose_workers(jobs, 1, 0, 1)
        runner = SubmititExecutor(root, "slurm" if executor == "slurm" else "local", workers,
                                  cluster.model_dump(), set(cluster.gpu_stages), force=force)
        where = f"{executor} jobs, at most {workers} at once"
    if not plan.order:
        console.print("nothing to do: every stage is up to date", highlight=False, markup=False, soft_wrap=True)
        return 0
    console.print(f"{len(plan.order)} stages to run ({plan.skipped} up to date); {where}; logs in {LOG_DIR}/",
                  highlight=False, markup=False, soft_wrap=True)
    if dry:
        for name in plan.order:
            waits = sorted(plan.upstream[name])
            console.print(f"  {name}" + (f"  <- {', '.join(waits)}" if waits else ""), highlight=False,
                          markup=False, soft_wrap=True)
        return 0
    with View(console, slots=workers) as view:
        outcome = run_plan(plan, runner, root, on_event=view.event)
    print_summary(console, outcome, str(LOG_DIR))
    if outcome.interrupted:
        return 130
    return 0 if outcome.ok else 1
