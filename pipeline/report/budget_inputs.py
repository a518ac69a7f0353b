"""Reading the budget check: per seed, the FIDs of the dense net and of round budget.round's ticket at
the study's budget T (the chain's eval outputs, artifacts/eval/s{seed}/r{k}/metrics.json) and at
budget.factor x T (the eval_budget stage's, artifacts/eval/budget/s{seed}/r{k}/metrics.json).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Optional

from pipeline.core import paths
from pipeline.core.config import Params
from pipeline.core.io import load_json
from pipeline.stats.budget import budget_stability


def _fid(path: Path, steps: Optional[int] = None) -> Optional[dict[str, float]]:
    """{"fid", "sparsity"} of an eval metrics file, None when it is missing, unreadable or (a budget
    file) written at another budget than `steps`: a stale file is not this run's."""
    if not path.exists():
        return None
    m = load_json(path)
    if not isinstance(m, dict) or steps is not None and m.get("train_steps") != steps:
        return None
    fid, sparsity = m.get("fid"), m.get("sparsity")
    if not isinstance(fid, (int, float)) or not math.isfinite(fid):
        return None
    return {"fid": float(fid), "sparsity": float(sparsity) if isinstance(sparsity, (int, float)) else math.nan}


def load_budget(params: Params, root: Path = paths.ROOT) -> Optional[dict[str, Any]]:
    """None when the budget check is off (budget.seeds: []). Else {"round", "factor", "steps_T",
    "steps_2T", "seeds", "T": {seed: {"dense": FID, "ticket": FID}}, "2T": {...}, "sparsity": {"T":
    {seed: ticket sparsity}, "2T": {...}}, "missing": [paths]}: a seed appears under a budget only
    when both of its FIDs there are found; what is not found is listed in "missing"."""
    budget = params.budget
    if not budget.enabled:
        return None
    root, k = Path(root), budget.round
    steps = params.train.steps
    out: dict[str, Any] = {"round": k, "factor": budget.factor, "steps_T": steps, "steps_2T": budget.factor * steps,
                           "seeds": list(budget.seeds), "T": {}, "2T": {}, "sparsity": {"T": {}, "2T": {}},
                           "missing": []}
    for seed in budget.seeds:
        for key, where, want in (("T", paths.eval_dir, None), ("2T", paths.budget_eval_dir, out["steps_2T"])):
            files = {net: where(seed, r, root) / "metrics.json" for net, r in (("dense", 0), ("ticket", k))}
            found = {net: _fid(path, want) for net, path in files.items()}
            out["missing"] += [str(files[net]) for net, f in found.items() if f is None]
            if all(found.values()):
                out[key][seed] = {net: f["fid"] for net, f in found.items()}
                out["sparsity"][key][seed] = found["ticket"]["sparsity"]
    return out


def budget_check(params: Params, root: Path = paths.ROOT, primary_round: Optional[int] = None) -> Optional[dict[str, Any]]:
    """The budget evidence of the run under `root` (pipeline.stats.budget.budget_stability) at
    report.margin and report.level, with what load_budget read under "inputs"; None when the check
    is off. `primary_round`: the report's primary round, to say whether the budget round is it."""
    data = load_budget(params, root)
    if data is None:
        return None
    evidence = budget_stability(data["T"], data["2T"] or None, params.report.margin, params.report.level,
                                steps=data["steps_T"], factor=data["factor"], round=data["round"],
                                primary_round=primary_round)
    return {**evidence, "inputs": data}
