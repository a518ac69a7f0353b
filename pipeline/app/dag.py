"""What `dvc repro` would run, as a DAG a parallel runner can schedule.

DVC decides everything that matters: its stage graph, its status (which stages changed), and, when
a stage is run with `dvc repro -s`, whether it really runs, restores from the run-cache or stops a
cascade early. This module only asks DVC which stages are candidates: the changed ones and
everything downstream of them (as `dvc repro` visits them), with their upstream edges.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence


@dataclass
class Plan:
    """Stages to run, in DVC's order, each with the stages it waits for."""

    order: list[str]                                   # a topological order (upstream first)
    upstream: dict[str, set[str]] = field(default_factory=dict)
    skipped: int = 0                                   # stages up to date and not downstream of a change

    def downstream_of(self, stage: str) -> set[str]:
        """Every planned stage that (transitively) waits for `stage`."""
        below: set[str] = set()
        frontier = [stage]
        while frontier:
            current = frontier.pop()
            for other, ups in self.upstream.items():
                if current in ups and other not in below:
                    below.add(other)
                    frontier.append(other)
        return below

    def depth(self) -> dict[str, int]:
        """Longest chain of planned stages from each stage to the end of the DAG (itself included):
        the runner starts the longest chains first."""
        down: dict[str, set[str]] = {s: set() for s in self.order}
        for stage, ups in self.upstream.items():
            for up in ups:
                down[up].add(stage)
        depth: dict[str, int] = {}
        for stage in reversed(self.order):
            depth[stage] = 1 + max((depth[d] for d in down[stage]), default=0)
        return depth

    def width(self) -> int:
        """The most stages that can run at once if every stage took as long: the widest level when
        stages are layered by their longest chain from the start."""
        level: dict[str, int] = {}
        for stage in self.order:
            level[stage] = 1 + max((level[u] for u in self.upstream[stage]), default=0)
        counts: dict[int, int] = {}
        for lv in level.values():
            counts[lv] = counts.get(lv, 0) + 1
        return max(counts.values(), default=0)


def from_graph(names: Sequence[str], edges: Iterable[tuple[str, str]], changed: Iterable[str],
               force: bool = False) -> Plan:
    """Plan over `names` (topologically ordered, upstream first) with `edges` (stage, upstream):
    the `changed` stages and everything downstream of them; every stage with `force`."""
    ups: dict[str, set[str]] = {n: set() for n in names}
    for stage, up in edges:
        if stage in ups and up in ups:
            ups[stage].add(up)
    dirty = set(names) if force else set(changed) & set(names)
    for stage in names:  # topological order: a stage's upstream is decided before it
        if ups[stage] & dirty:
            dirty.add(stage)
    order = [n for n in names if n in dirty]
    return Plan(order=order, upstream={n: ups[n] & dirty for n in order}, skipped=len(names) - len(order))


def from_dvc(root: Path, targets: Sequence[str] = (), force: bool = False) -> Plan:
    """Ask DVC for the stages `dvc repro [targets]` would visit and which of them changed."""
    import networkx as nx
    from dvc.repo import Repo
    from dvc.stage import PipelineStage

    here = os.getcwd()
    os.chdir(root)  # DVC names stages relative to the working directory; the stages run in root
    try:
        return _plan(Repo, nx, PipelineStage, targets, force)
    finally:
        os.chdir(here)


def _plan(Repo, nx, PipelineStage, targets: Sequence[str], force: bool) -> Plan:
    with Repo(".") as repo:
        graph = repo.index.graph  # edges run from a stage to the stages whose outputs it reads
        if targets:
            chosen: set = set()
            for target in targets:
                for stage in repo.stage.collect(target):
                    chosen |= {stage} | nx.descendants(graph, stage)
            graph = graph.subgraph(chosen)
        stages = [s for s in reversed(list(nx.topological_sort(graph)))
                  if isinstance(s, PipelineStage) and not s.frozen]
        names = [s.addressing for s in stages]
        edges = [(s.addressing, u.addressing) for s in stages for u in graph.successors(s)
                 if isinstance(u, PipelineStage)]
        # one status of the whole repository: per-target status re-collects the graph for every
        # target (minutes for a hundred stages)
        changed = set() if force else set(repo.status()) & set(names)
    return from_graph(names, edges, changed, force=force)
