"""`lth-diffusion repro -j N`: every stage `dvc repro` would run, up to N at a time, in DAG order.

A stage starts when every planned stage it reads from has finished; the longest remaining chain
goes first. Each runs through DVC (see executors), its output in logs/repro/<stage>.log. A failed
stage stops only what depends on it; the rest finish, and the run exits 1 naming the failure. A
killed run, re-run, plans again from DVC's status: finished stages are up to date, interrupted
ones resume from their checkpoints.
"""
from __future__ import annotations

import json
import re
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from pipeline.app.dag import Plan
from pipeline.app.executors import Executor

LOG_DIR = Path("logs") / "repro"
WAITING, RUNNING, DONE, CACHED, FAILED, BLOCKED = "waiting", "running", "done", "cached", "failed", "blocked"


@dataclass
class StageRun:
    name: str
    state: str = WAITING
    slot: Optional[int] = None
    started: float = 0.0
    seconds: float = 0.0
    error: str = ""
    handle: Any = None


@dataclass
class Outcome:
    runs: dict[str, StageRun]
    seconds: float
    interrupted: bool = False
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def failed(self) -> list[StageRun]:
        return [r for r in self.runs.values() if r.state == FAILED]

    @property
    def ok(self) -> bool:
        return not self.failed and not self.interrupted and all(r.state in (DONE, CACHED) for r in self.runs.values())


def log_path(root: Path, stage: str) -> Path:
    return root / LOG_DIR / f"{re.sub(r'[^A-Za-z0-9@._-]', '_', stage)}.log"


def error_line(log: Path) -> str:
    """The one line that says why a stage failed: the stage's own `error: ...` line when it printed
    one (every stage does for bad input), else DVC's last ERROR line, else the last line."""
    try:
        lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return "no log"
    for prefix in ("error:", "ERROR:"):
        found = [ln for ln in lines if ln.startswith(prefix)]
        if found:
            return found[-1]
    return lines[-1] if lines else "failed without output"


def _finished_state(log: Path) -> str:
    text = log.read_text(errors="replace") if log.exists() else ""
    return DONE if "Running stage" in text else CACHED


def run_plan(plan: Plan, executor: Executor, root: Path,
             on_event: Callable[[str, StageRun, "Outcome"], None] = lambda *a: None,
             poll_seconds: float = 0.2) -> Outcome:
    """Run `plan` on `executor`'s slots; on SIGINT/SIGTERM stop the running stages and return."""
    (root / LOG_DIR).mkdir(parents=True, exist_ok=True)
    runs = {name: StageRun(name) for name in plan.order}
    depth = plan.depth()
    rank = {name: (-depth[name], i) for i, name in enumerate(plan.order)}
    free = list(range(executor.slots))
    outcome = Outcome(runs=runs, seconds=0.0)
    start = time.monotonic()
    stop = {"signal": None}

    def on_signal(signum, _frame):
        stop["signal"] = signum

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        while True:
            if stop["signal"] is not None:
                outcome.interrupted = True
                break
            for run in [r for r in runs.values() if r.state == RUNNING]:
                rc = executor.poll(run.handle)
                if rc is None:
                    continue
                run.seconds = time.monotonic() - run.started
                free.append(run.slot)
                log = log_path(root, run.name)
                if rc == 0:
                    run.state = _finished_state(log)
                else:
                    run.state, run.error = FAILED, error_line(log)
                    blocked = [b for b in plan.order if b in plan.downstream_of(run.name) and runs[b].state == WAITING]
                    for below in blocked:
                        runs[below].state = BLOCKED
                        runs[below].error = f"{run.name} failed"
                on_event(run.state, run, outcome)
            ready = sorted((r for r in runs.values() if r.state == WAITING
                            and all(runs[u].state in (DONE, CACHED) for u in plan.upstream[r.name])),
                           key=lambda r: rank[r.name])
            for run in ready[:len(free)]:
                free.sort()
                run.slot = free.pop(0)
                run.state, run.started = RUNNING, time.monotonic()
                run.handle = executor.start(run.name, run.slot, log_path(root, run.name))
                on_event(RUNNING, run, outcome)
            if not any(r.state in (RUNNING, WAITING) for r in runs.values()):
                break
            on_event("tick", None, outcome)
            time.sleep(poll_seconds)
    finally:
        if outcome.interrupted:
            for run in runs.values():
                if run.state == RUNNING:
                    executor.stop(run.handle)
                    run.state, run.error = FAILED, "interrupted"
        for s, handler in previous.items():
            signal.signal(s, handler)
    outcome.seconds = time.monotonic() - start
    for run in runs.values():
        outcome.counts[run.state] = outcome.counts.get(run.state, 0) + 1
    _write_summary(root, outcome)
    return outcome


def _write_summary(root: Path, outcome: Outcome) -> None:
    summary = {"seconds": round(outcome.seconds, 1), "interrupted": outcome.interrupted,
               "stages": {r.name: {"state": r.state, "seconds": round(r.seconds, 1), "slot": r.slot,
                                   **({"error": r.error} if r.error else {})} for r in outcome.runs.values()}}
    (root / LOG_DIR / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
