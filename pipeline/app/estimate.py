"""How long the study in a params file takes on this machine's CPUs: the stage plan (training steps per
stage, evals and their sample counts, stages) times per-unit costs measured on the reference machine,
scaled by the model's MACs per image and the batch size relative to the default study.

Reference costs (2-core CPU machine, no GPU; the default study: mnist5k 12×12, U-Net dim 16 with
dim_mults [1, 2, 2], 6,304,768 MACs per image forward, batch 32):
- training: about 27 optimizer steps/s per worker of one thread; two such workers run side by side on
  2 cores (bench/worker_split.py);
- one eval stage (500 samples, 50 DDIM steps, FID/KID with intervals, held-out loss): about 35 s at one
  thread;
- start-up of a stage (Python, torch, DVC's own bookkeeping): 2–4 s.
Check against bench/results/parallel_study.json, 96 stages of the 3-seed × 5-round study with controls at
rounds 3 and 5: `dvc repro` 2,720 s, `lth-diffusion repro -j auto` 1,695 s; this model gives 44–47 min
and 27–29 min for it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

REF_MACS = 6_304_768        # MACs of one image forward of the default U-Net at 12×12
REF_BATCH = 32
REF_STEPS_PER_S = 27.0      # one 1-thread worker, default U-Net and batch
REF_EVAL_S = 35.0           # one eval stage at one thread
REF_EVAL_WORK = 500 * 50    # its samples × DDIM steps
STARTUP_S = (2.0, 4.0)      # per stage, low and high
# two workers on 2 cores took 0.62× the serial time, not 0.5× (the DAG narrows at its ends, DVC locks):
# 1 / (2 × 0.623) = 0.80 of the ideal speed-up
PARALLEL_EFFICIENCY = 0.8
SMALL_STAGE_S = 5.0         # init, features (pinned), reference, prune, rewind, similarity, report: work besides start-up


@dataclass(frozen=True)
class Plan:
    stages: int
    train_steps: int        # optimizer steps over every training stage (dense, retrain, controls)
    evals: int              # eval stages (dense, tickets, controls)
    small_stages: int       # stages whose work is small beside start-up
    workers: int            # stages at once under `lth-diffusion repro -j auto`


@dataclass(frozen=True)
class Estimate:
    plan: Plan
    macs: int
    train_s: float          # serial seconds of training at one thread
    eval_s: float           # serial seconds of evals at one thread
    serial_s: tuple[float, float]    # `dvc repro`: one stage at a time
    parallel_s: tuple[float, float]  # `lth-diffusion repro -j auto`


def plan(p, stages: int, cores: int | None = None) -> Plan:
    seeds, rounds = len(p.imp.seeds), len(p.imp.rounds)
    controls = len(p.controls.kinds) * seeds * len(p.controls.rounds)
    budget = len(p.budget.seeds)  # per seed: dense and one ticket again at budget.factor x train.steps
    long = p.budget.factor * p.train.steps
    steps = (seeds * p.train.steps + (seeds * rounds + controls) * p.retrain_steps()
             + budget * (2 * long - p.start_step()))
    eval_stages = seeds * (1 + rounds) + controls + budget
    evals = eval_stages + budget  # eval_budget evaluates two nets
    # every stage that neither trains nor evaluates
    small = stages - (seeds + seeds * rounds + controls + 2 * budget) - eval_stages
    # the chain of one seed is sequential, so the DAG is about `seeds` wide (controls widen it a little)
    workers = max(1, min(cores or os.cpu_count() or 1, seeds))
    return Plan(stages, steps, evals, small, workers)


def estimate(p, stages: int, macs: int, cores: int | None = None) -> Estimate:
    pl = plan(p, stages, cores)
    scale = macs / REF_MACS
    train_s = pl.train_steps / REF_STEPS_PER_S * scale * p.train.batch_size / REF_BATCH
    eval_s = pl.evals * REF_EVAL_S * scale * (p.eval.num_samples * p.eval.sampling_steps) / REF_EVAL_WORK
    small = pl.small_stages * SMALL_STAGE_S
    serial = tuple(train_s + eval_s + small + pl.stages * s for s in STARTUP_S)
    speedup = pl.workers * PARALLEL_EFFICIENCY if pl.workers > 1 else 1.0
    return Estimate(pl, macs, train_s, eval_s, serial, tuple(s / speedup for s in serial))


def span(seconds: tuple[float, float]) -> str:
    """'27–29 min', '1.9–2.1 h', '≈ 470 days': the unit that reads, one value when the range is narrow."""
    lo, hi = seconds
    for unit, size, limit in (("s", 1, 90), ("min", 60, 120 * 60), ("h", 3600, 48 * 3600), ("days", 86400, 730 * 86400),
                              ("years", 365 * 86400, float("inf"))):
        if hi < limit:
            a, b = lo / size, hi / size
            digits = 1 if unit == "h" or b < 10 and unit != "s" else 0
            if f"{a:.{digits}f}" == f"{b:.{digits}f}":
                return f"≈ {b:.{digits}f} {unit}"
            return f"{a:.{digits}f}–{b:.{digits}f} {unit}"
    raise AssertionError("unreachable")


def line(e: Estimate) -> str:
    """The `check` line: both ways of running, and what the estimate assumes."""
    pl = e.plan
    return (f"{span(e.parallel_s)} with `lth-diffusion repro -j auto` ({pl.workers} worker"
            f"{'s' if pl.workers != 1 else ''}), {span(e.serial_s)} with `dvc repro`\n            on CPU: "
            f"{pl.train_steps:,} training steps, {pl.evals} evals, {e.macs / 1e6:.1f} M MACs per image "
            f"({e.macs / REF_MACS:.2g}× the default U-Net); costs measured on a 2-core machine"
            + ("; a GPU run takes a small fraction of this (docs/gpu.md)" if e.serial_s[1] > 86400 else ""))
