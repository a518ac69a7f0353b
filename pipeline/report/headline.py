"""reports/headline.json: the handful of numbers a reader compares across runs, small enough that
`dvc metrics show reports/headline.json` (and `dvc exp show` on these columns) fits a terminal.

Everything else (per-round numbers, the extractor's hash, the frontier per seed, every finding) stays in
reports/metrics.json. Values are rounded: they are for reading, the full precision is in metrics.json.
"""
from __future__ import annotations

import math
import re
from typing import Any, Optional

# the verdict words without their qualification: "supported (provisional: ...)" -> "supported"
_QUALIFIED = re.compile(r"^(.*?)\s*\(provisional[^)]*\)\s*$")


def _num(x: Any, digits: int) -> Optional[float]:
    try:
        f = float(x)
    except (TypeError, ValueError):
        return None
    return round(f, digits) if math.isfinite(f) else None


def read_at_sparsity(read_at: str) -> Optional[float]:
    """'round 3 (93.6 % prunable, ...)' -> 0.936."""
    m = re.search(r"\(([\d.]+) % prunable", read_at or "")
    return round(float(m.group(1)) / 100, 4) if m else None


def headline(metrics: dict[str, Any], primary: Optional[dict[str, Any]]) -> dict[str, Any]:
    """From the summary metrics (reports/metrics.json's content) and the primary finding's row (its
    effect in the row's own unit: the FID ratio ticket / dense for the primary claim, > 1 worse)."""
    frontier = metrics.get("frontier") or {}
    # fid_dense, not dense_fid: metrics.json has dense_fid, and `dvc exp show` would prefix both with
    # their file names (a 31-character column) to tell them apart
    out: dict[str, Any] = {"fid_dense": _num(metrics.get("dense_fid"), 2),
                           "frontier_sparsity": _num(frontier.get("sparsity"), 4)}
    if primary:
        verdict = str(primary.get("verdict", ""))
        m = _QUALIFIED.match(verdict)
        base = m.group(1) if m else verdict.split(";")[0].strip()
        lo, hi = (primary.get("ci") or [None, None])[:2]
        at = _num(primary.get("sparsity"), 4) if "sparsity" in primary else None
        out.update({"effect": _num(primary.get("effect"), 2), "effect_lo": _num(lo, 2), "effect_hi": _num(hi, 2),
                    "at_sparsity": at if at is not None else read_at_sparsity(str(primary.get("read_at", ""))),
                    "verdict": base, "provisional": "provisional" in verdict})
    return out
