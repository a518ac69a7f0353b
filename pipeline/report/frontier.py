"""The report's inference on the run: the paired held-out loss difference of two runs with the one
standard-error model of pipeline.stats.paired (the FID ratio: pipeline.report.fid_intervals), from the
per-item held-out losses each eval writes to paired.json on the shared items, the dense baseline's
convergence check (descriptive), and the sparsest non-inferior ticket by a fixed sequence of
non-inferiority tests of the FID ratio ticket/dense against 1 + report.margin (pipeline.stats.frontier,
on the log scale), per seed and over seeds.

The population every interval describes is Params.population(): data-order
seeds of one θ0 (model.theta0 = shared), or seeds that vary the initialisation too (per_seed), with
the sampling noise held fixed (common random numbers).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pandas as pd

from pipeline.core.config import Params
from pipeline.core.io import load_json
from pipeline.report import text
from pipeline.report.fid_intervals import fid_difference, fid_of, fid_ratio
from pipeline.core import paths
from pipeline.report.inputs import require
from pipeline.stats.convergence import SeedsConvergence, dense_convergence_over_seeds
from pipeline.stats.frontier import Frontier, RoundInterval, SeedsFrontier, frontier_over_seeds, margins_table
from pipeline.stats.logscale import RatioEstimate
from pipeline.stats.paired import SeedEstimate, paired_items_over_seeds


@dataclass
class RunData:
    """One eval's paired.json: FID split errors (shared splits) and per-item held-out losses."""
    split: np.ndarray
    items: np.ndarray
    curve: Optional[dict[int, np.ndarray]]


def load_paired(params: Params, df: pd.DataFrame, root: Path) -> dict[tuple[str, int, int], RunData]:
    """(kind, seed, k) -> RunData for every row of the eval table (kind: dense, ticket or a control)."""
    out = {}
    for r in df.itertuples():
        kind, seed, k = str(r.kind), int(r.seed), int(r.round)
        folder = paths.eval_dir(seed, k, root) if r.main else paths.control_eval_dir(kind, seed, k, root)
        stage = "eval_dense" if k == 0 else ("eval" if r.main else "eval_control")
        data = load_json(require(folder / "paired.json", stage, seed, k))
        curve = data.get("heldout_curve")
        out[(kind, seed, k)] = RunData(np.asarray(data["fid_split_errors"], dtype=np.float64),
                                       np.asarray(data["heldout_items"], dtype=np.float64),
                                       {int(s): np.asarray(v, dtype=np.float64) for s, v in curve.items()}
                                       if curve else None)
    return out


def loss_difference(runs: dict, a: tuple[str, int], b: tuple[str, int], seeds, level: float) -> SeedEstimate:
    """Held-out loss of a minus b, paired by seed and by item."""
    return paired_items_over_seeds(np.stack([runs[(a[0], s, a[1])].items for s in seeds]),
                                   np.stack([runs[(b[0], s, b[1])].items for s in seeds]), level=level)


def convergence(params: Params, runs: dict) -> Optional[SeedsConvergence]:
    curves = {s: runs[("dense", s, 0)].curve for s in params.imp.seeds if runs.get(("dense", s, 0))}
    if not curves or any(c is None or len(c) < 2 for c in curves.values()):
        return None
    return dense_convergence_over_seeds(curves, params.report.converged_tolerance, level=params.report.level)


def global_sparsity(df: pd.DataFrame, kind: str, seed: Optional[int], k: int) -> float:
    rows = df[(df["kind"] == kind) & (df["round"] == k) & ((df["seed"] == seed) if seed is not None else True)]
    return float((1.0 - rows["params_kept"] / rows["params_total"]).mean())


@dataclass
class FrontierResult:
    seeds: SeedsFrontier
    over_seeds: Frontier
    table: pd.DataFrame                     # the verdict across report.margins
    ratios: dict[int, RatioEstimate]        # round -> FID ratio ticket/dense over seeds (tests against 1 + margin)
    per_seed_ratios: dict[tuple[int, int], RatioEstimate]
    deltas: dict[int, SeedEstimate]         # round -> ΔFID ticket − dense over seeds (descriptive)
    converged: Optional[SeedsConvergence]   # descriptive: no verdict hangs on it
    dense_fid_mean: float = float("nan")

    @property
    def fid_margin(self) -> float:
        """The margin as a FID band above the mean dense FID (for figures): report.margin × mean dense FID,
        where a ticket's FID ratio reaches 1 + report.margin."""
        return (self.over_seeds.margin_fraction or 0.0) * self.dense_fid_mean


def frontier(params: Params, df: pd.DataFrame, runs: dict) -> Optional[FrontierResult]:
    seeds = list(params.imp.seeds)
    ks = [r.k for r in params.imp.rounds]
    if not ks:
        return None
    level, bound = params.report.level, 1 + params.report.margin
    # the held-out loss check is descriptive (a budget check qualifies the ticket verdict), so it does not
    # make the frontier provisional
    conv = convergence(params, runs)
    ratios = {k: fid_ratio(df, runs, ("ticket", k), ("dense", 0), seeds, level, bound) for k in ks}
    per_seed = {(s, k): fid_ratio(df, runs, ("ticket", k), ("dense", 0), [s], level, bound) for s in seeds for k in ks}
    deltas = {k: fid_difference(df, runs, ("ticket", k), ("dense", 0), seeds, level) for k in ks}

    def rounds(seed: Optional[int]) -> list[RoundInterval]:
        out = []
        for k in ks:
            e = (ratios[k] if seed is None else per_seed[(seed, k)]).log
            sp = df[(df["kind"] == "ticket") & (df["round"] == k) & ((df["seed"] == seed) if seed is not None else True)]
            out.append(RoundInterval(k, float(sp["sparsity"].mean()), global_sparsity(df, "ticket", seed, k),
                                     e.estimate, e.high, e.low))
        return out

    dense_fid = {s: fid_of(df, "dense", s, 0) for s in seeds}
    label = f"{100 * level:g} % interval's upper end"
    over = frontier_over_seeds({s: rounds(s) for s in seeds}, rounds(None), params.report.margin, None,
                               interval=label, ratio=True)
    table = margins_table(rounds(None), None, params.report.margins, per_seed={s: rounds(s) for s in seeds},
                          interval=label, ratio=True)
    return FrontierResult(over, over.over_seeds, table, ratios, per_seed, deltas, conv,
                          float(np.mean(list(dense_fid.values()))))


def estimate_text(e: SeedEstimate, spec: str = "+.2f") -> str:
    """Effect, interval and both tests, for the findings' 'also' column."""
    exact = f"exact sign-flip p = {e.exact_p:.2g} (smallest reachable {e.min_p:.2g})"
    return (f"{format(e.estimate, spec)} [{format(e.low, spec[1:] if spec[0] == '+' else spec)}, "
            f"{format(e.high, spec[1:] if spec[0] == '+' else spec)}], t p = {e.t_p:.2g}, {exact}")


def json_frontier(result: Optional[FrontierResult]) -> dict[str, Any]:
    """What reports/metrics.json keeps of the frontier (read back by `report compare`)."""
    if result is None:
        return {}
    per_seed = {}
    for seed, f in result.seeds.per_seed:
        per_seed[str(seed)] = {"round": f.round_or_dense, "sparsity": f.sparsity_or_dense,
                               "global_sparsity": f.global_sparsity_or_dense, "status": f.status,
                               "stopped_at": f.stopped_at, "last_sparsity": f.last_prunable_sparsity}
    o = result.over_seeds
    conv = result.converged
    return {"frontier": {"margin_fraction": o.margin_fraction, "margin": result.fid_margin,
                         "margin_ratio": 1 + (o.margin_fraction or 0.0), "status": o.status,
                         "round": o.round_or_dense, "sparsity": o.sparsity_or_dense,
                         "global_sparsity": o.global_sparsity_or_dense, "stopped_at": o.stopped_at,
                         "provisional": o.provisional, "sentence": text.frontier_sentence(o), "per_seed": per_seed},
            "dense_converged": None if conv is None else bool(conv.converged)}
