"""The runner's view: a live table on a terminal (what runs, what waits, what failed), one line
per event anywhere else (CI logs, files)."""
from __future__ import annotations

import time
from typing import Optional

from rich.console import Console
from rich.live import Live
from rich.table import Table

from pipeline.app.runner import BLOCKED, CACHED, DONE, FAILED, RUNNING, WAITING, Outcome, StageRun

STYLE = {DONE: "green", CACHED: "dim", FAILED: "bold red", BLOCKED: "yellow", RUNNING: "cyan"}


def _counts(outcome: Outcome) -> dict[str, int]:
    counts: dict[str, int] = {}
    for run in outcome.runs.values():
        counts[run.state] = counts.get(run.state, 0) + 1
    return counts


def headline(outcome: Outcome, elapsed: float) -> str:
    c = _counts(outcome)
    total = len(outcome.runs)
    finished = c.get(DONE, 0) + c.get(CACHED, 0)
    parts = [f"{finished}/{total} finished", f"{c.get(RUNNING, 0)} running", f"{c.get(WAITING, 0)} waiting"]
    if c.get(CACHED):
        parts.append(f"{c[CACHED]} unchanged")
    if c.get(FAILED):
        parts.append(f"{c[FAILED]} failed")
    if c.get(BLOCKED):
        parts.append(f"{c[BLOCKED]} blocked")
    return " · ".join(parts) + f" · {elapsed:,.0f} s"


class View:
    """Context manager fed by the runner's events."""

    def __init__(self, console: Optional[Console] = None, slots: int = 1):
        self.console = console or Console(stderr=True)
        self.live_mode = self.console.is_terminal
        self.slots = slots
        self.start = time.monotonic()
        self._live: Optional[Live] = None
        self._outcome: Optional[Outcome] = None

    def __enter__(self) -> "View":
        if self.live_mode:
            self._live = Live(console=self.console, refresh_per_second=4, transient=False)
            self._live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self._live is not None:
            self._render()
            self._live.__exit__(*exc)

    def event(self, kind: str, run: Optional[StageRun], outcome: Outcome) -> None:
        self._outcome = outcome
        if self.live_mode:
            self._render()
            return
        if run is None:
            return
        elapsed = time.monotonic() - self.start
        if kind == RUNNING:
            line = f"[{elapsed:7.1f} s] start   {run.name} (worker {run.slot})"
        elif kind in (DONE, CACHED):
            what = "done   " if kind == DONE else "unchanged"
            line = f"[{elapsed:7.1f} s] {what} {run.name} ({run.seconds:.1f} s)"
        elif kind == FAILED:
            below = sum(r.error == f"{run.name} failed" for r in outcome.runs.values() if r.state == BLOCKED)
            line = (f"[{elapsed:7.1f} s] FAILED  {run.name}: {run.error}"
                    + (f" ({below} stages below it will not run)" if below else ""))
        else:
            return
        self.console.print(line, highlight=False, markup=False, soft_wrap=True)

    def _render(self) -> None:
        if self._outcome is None or self._live is None:
            return
        now = time.monotonic()
        table = Table(title=headline(self._outcome, now - self.start), title_justify="left", box=None,
                      show_header=False, pad_edge=False)
        table.add_column("state", no_wrap=True)
        table.add_column("stage", no_wrap=True)
        table.add_column("time", justify="right", no_wrap=True)
        runs = list(self._outcome.runs.values())
        for run in sorted((r for r in runs if r.state == RUNNING), key=lambda r: r.slot or 0):
            table.add_row(f"[cyan]worker {run.slot}[/]", run.name, f"{now - run.started:,.0f} s")
        for run in [r for r in runs if r.state == FAILED][-5:]:
            table.add_row("[bold red]failed[/]", run.name, run.error[:100])
        waiting = [r.name for r in runs if r.state == WAITING]
        if waiting:
            more = f" … +{len(waiting) - 4}" if len(waiting) > 4 else ""
            table.add_row("[dim]next[/]", ", ".join(waiting[:4]) + more, "")
        self._live.update(table)


def print_summary(console: Console, outcome: Outcome, log_dir: str) -> None:
    console.print(headline(outcome, outcome.seconds), highlight=False, markup=False, soft_wrap=True)
    for run in outcome.failed:
        console.print(f"failed: {run.name}: {run.error} (log: {log_dir}/{run.name}.log)", highlight=False,
                      markup=False, style=STYLE[FAILED])
    blocked = [r.name for r in outcome.runs.values() if r.state == BLOCKED]
    if blocked:
        console.print(f"not run because an upstream stage failed: {len(blocked)} stages", highlight=False,
                      markup=False)
    if outcome.interrupted:
        console.print("interrupted: run the same command again to continue (finished stages are kept)",
                      highlight=False, markup=False, soft_wrap=True)
