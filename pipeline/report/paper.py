"""The paper-style table at the top of the report: one row per sparsity (IMP round), one FID column per
schedule and control (mean over seeds [95 % interval]), and the ticket's MACs and storage.

Its input is the long shape of reports/compare/compare_rounds.csv reduced to means: one row per
(method, round) with `sparsity`, `fid`, `fid_low`, `fid_high`, `seeds`, `macs`, `storage_bytes`. The
workspace's run comes from the report's seed means (their intervals include the shared-noise term);
other experiments' rows, when given in compare_rounds.csv's columns, are reduced by `means_from_rounds`
(between-seed variance plus each run's own sampling variance, no shared-noise term).
"""
from __future__ import annotations

import math
from typing import Optional

import pandas as pd

from pipeline.report.fid_intervals import seed_mean_ci
from pipeline.report.render import Table, fmt

MEANS = ["method", "main", "round", "sparsity", "fid", "fid_low", "fid_high", "seeds", "macs", "storage_bytes"]


def method_name(kind: str, schedule: str) -> str:
    """'uniform' for the main chain (dense is its round 0), 'reinit control' for a control."""
    return schedule if kind in ("dense", "ticket") else f"{kind} control"


def _short(method: str) -> str:
    return method.replace(" control", " ctrl")


def means_from_stats(stats: pd.DataFrame, schedule: str) -> pd.DataFrame:
    """The report's seed means (pipeline.report.tables.seed_stats) in the table's long shape."""
    out = pd.DataFrame({"method": [method_name(k, schedule) for k in stats["kind"]], "main": stats["main"],
                        "round": stats["round"].astype(int), "sparsity": stats["sparsity"], "fid": stats["fid"],
                        "fid_low": stats["fid_low"], "fid_high": stats["fid_high"], "seeds": stats["seeds"],
                        "macs": stats["macs"], "storage_bytes": stats["storage_bytes"]})
    return out[MEANS]


def means_from_rounds(rows: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """compare_rounds.csv's per-seed rows (experiment, schedule, kind, seed, round, sparsity, fid,
    fid_std, macs, storage_bytes) reduced to means per (schedule or control, round)."""
    out = []
    rows = rows.assign(method=[method_name(k, s) for k, s in zip(rows["kind"], rows["schedule"])])
    for (method, k), g in rows.groupby(["method", "round"], sort=True):
        g = g.sort_values("seed")
        e = seed_mean_ci(g["fid"].tolist(), g["fid_std"].tolist() if "fid_std" in g else [None] * len(g), level)
        out.append({"method": method, "main": bool(g["kind"].isin(["dense", "ticket"]).all()), "round": int(k),
                    "sparsity": float(g["sparsity"].mean()), "fid": e.mean, "fid_low": max(e.low, 0.0),
                    "fid_high": e.high, "seeds": len(g), "macs": float(g["macs"].mean()),
                    "storage_bytes": float(g["storage_bytes"].mean())})
    return pd.DataFrame(out, columns=MEANS)


def _cell(r: Optional[pd.Series]) -> str:
    if r is None:
        return "–"
    lo, hi = float(r["fid_low"]), float(r["fid_high"])
    span = f" [{lo:.1f}, {hi:.1f}]" if math.isfinite(lo) and math.isfinite(hi) else ""
    return f"{fmt(r['fid'], '.1f')}{span}"


def paper_table(means: pd.DataFrame, main: str, macs_scale: float = 1e6, macs_unit: str = "MMACs") -> Table:
    """Rows: rounds (sparsity of the `main` schedule's ticket); columns: FID per method, main first,
    then other schedules, then controls; MACs and storage of the main ticket (a control at the same
    round keeps the same per-layer density, so the same cost)."""
    methods = list(dict.fromkeys(means["method"]))
    schedules = [m for m in methods if m == main] + sorted(m for m in methods if m != main and not m.endswith(" control"))
    controls = sorted(m for m in methods if m.endswith(" control"))
    order = schedules + controls
    by = {(r["method"], int(r["round"])): r for _, r in means.iterrows()}
    rounds = sorted({int(k) for k in means["round"]})
    n = int(means.loc[means["method"] == main, "seeds"].max()) if (means["method"] == main).any() else 0
    header = ["round", "sparsity"] + [f"{_short(m)} FID" for m in order] + [f"MACs ({macs_unit})", "KiB"]
    body = []
    for k in rounds:
        ref = by.get((main, k))
        if ref is None:
            ref = next((by[(m, k)] for m in order if (m, k) in by), None)
        sparsity = "dense" if k == 0 else f"{100 * float(ref['sparsity']):.1f} %"
        body.append([str(k), sparsity] + [_cell(by.get((m, k))) for m in order]
                    + [fmt(float(ref["macs"]) / macs_scale, ".2f"), fmt(float(ref["storage_bytes"]) / 1024, ".0f")])
    caption = (f"FID: mean over {n} seeds [95 % interval]; lower is better. Sparsity: prunable weights removed. "
               "ctrl: control (– where not run). MACs per image and compressed storage (KiB) of the ticket.")
    return Table(header, body, caption=caption)
