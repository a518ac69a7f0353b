"""Reading the run: one row per eval metrics.json (main chain and controls), and the per-t losses.

Main chain: artifacts/eval/s{seed}/r{k}/metrics.json (k = 0 dense, k >= 1 tickets), required for every
eval seed and round in params. Controls: artifacts/eval/controls/{kind}/s{seed}/r{k}/metrics.json,
optional, found on disk; folders of seeds or rounds no longer in params are ignored (stale).
"""
from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.core import paths
from pipeline.core.config import ConfigError, Params
from pipeline.core.io import load_json

# eval/controls/{kind}/s{seed}/r{k}/metrics.json under the root: a control beside the chain
CONTROL_EVAL = re.compile(paths.pattern("control_eval", r"/metrics\.json"))
MAIN_KINDS = ("dense", "ticket")
NUMERIC = ("kid_mean", "kid_std", "macs", "storage_bytes", "params_kept", "params_total", "heldout_loss", "heldout_loss_se",
           "fid_std", "fid_inf", "fid_ci_low", "fid_ci_high", "fid_inf_low", "fid_inf_high")


def require(path: Path, stage: str, seed: int, k: int) -> Path:
    if not path.exists():
        raise ConfigError(f"{path}: missing; it is made by stage '{stage}' (seed {seed}, round {k}); "
                          "run `dvc repro` first")
    return path


def round_ids(params: Params) -> list[int]:
    return [0] + [r.k for r in params.imp.rounds]


def _pair(v: Any) -> tuple[float, float]:
    if isinstance(v, (list, tuple)) and len(v) == 2:
        try:
            return float(v[0]), float(v[1])
        except (TypeError, ValueError):
            pass
    return math.nan, math.nan


def metrics_row(m: dict[str, Any], path: Path, kind: str, default_rewind: str) -> dict[str, Any]:
    """A flat row of one metrics.json; `kind` is the layout's guess, the file's own `kind` wins."""
    missing = [k for k in ("seed", "round", "sparsity", "fid") if k not in m]
    if missing:
        raise ConfigError(f"{path}: not an eval metrics file (lacks {', '.join(missing)})")
    row = {k: v for k, v in m.items() if not isinstance(v, (list, dict))}
    row["kind"] = str(m.get("kind") or kind)
    row["main"] = row["kind"] in MAIN_KINDS
    row["rewind"] = str(m.get("rewind") or ("none" if row["kind"] == "dense" else default_rewind))
    row["remaining_pct"] = 100.0 * (1.0 - float(m["sparsity"]))
    row["fid_ci_low"], row["fid_ci_high"] = _pair(m.get("fid_ci"))
    row["fid_inf_low"], row["fid_inf_high"] = _pair(m.get("fid_inf_ci"))
    row["heldout_loss_by_t"] = m.get("heldout_loss_by_t")
    row["heldout_t_edges"] = m.get("heldout_t_edges")
    row["path"] = str(path)
    return row


def load_eval_table(params: Params, root: Path) -> pd.DataFrame:
    """One row per metrics.json: the main run's (required) plus those of the controls of params
    (controls.kinds x controls.rounds) found under eval/controls."""
    root = Path(root)
    rows = []
    rounds = round_ids(params)
    for seed in params.imp.seeds:
        for k in rounds:
            path = require(paths.eval_dir(seed, k, root) / "metrics.json", "eval", seed, k)
            rows.append(metrics_row(load_json(path), path, "dense" if k == 0 else "ticket", params.rewind.mode))
    # only the controls params ask for: another run's control files (an experiment's workspace holds
    # the baseline's) must never appear as this run's controls
    kinds, control_rounds = set(params.controls.kinds), set(params.controls.rounds)
    for path in sorted(root.glob((paths.control_eval_dir("*", "*", "*", Path()) / "metrics.json").as_posix())):
        m = CONTROL_EVAL.fullmatch(path.relative_to(root).as_posix())
        if m and m[1] in kinds and int(m[2]) in params.imp.seeds and int(m[3]) in control_rounds:
            rows.append(metrics_row(load_json(path), path, m[1], m[1]))
    df = pd.DataFrame(rows)
    for col in NUMERIC:
        df[col] = pd.to_numeric(df[col], errors="coerce") if col in df else math.nan
    for col in ("feature_extractor", "schedule", "sampler", "extractor_sha256"):
        if col not in df:
            df[col] = "?"
        df[col] = df[col].fillna("?").astype(str)
    if "num_samples" not in df:
        df["num_samples"] = 0
    df.loc[df["kind"] == "dense", "schedule"] = "dense"
    return df


def extractor_label(name: str, sha256: str) -> str:
    """'classifier 0123456789ab': the extractor's name and the first 12 hex of its weights' sha256."""
    short = sha256[:12] if sha256 and sha256 != "?" else "unhashed"
    return f"{name} {short}"


def heldout_by_t_table(df: pd.DataFrame) -> pd.DataFrame:
    """Tidy per-t-bucket held-out losses: kind, seed, round, sparsity, bucket, t_lo, t_hi, loss.

    t_lo/t_hi are the bucket's edges from `heldout_t_edges` (bucket i covers [t_lo, t_hi)).
    Rows without per-t losses are skipped.
    """
    out = []
    for _, r in df.iterrows():
        losses, edges = r.get("heldout_loss_by_t"), r.get("heldout_t_edges")
        if not isinstance(losses, list) or not isinstance(edges, list) or len(edges) != len(losses) + 1:
            continue
        for i, loss in enumerate(losses):
            out.append({"kind": r["kind"], "seed": int(r["seed"]), "round": int(r["round"]),
                        "sparsity": round(float(r["sparsity"]), 6), "bucket": i, "t_lo": int(edges[i]),
                        "t_hi": int(edges[i + 1]),
                        # an empty bucket (fewer held-out items than buckets) has no loss
                        "loss": float("nan") if loss is None else float(loss)})
    cols = ["kind", "seed", "round", "sparsity", "bucket", "t_lo", "t_hi", "loss"]
    frame = pd.DataFrame(out, columns=cols)
    order = {k: i for i, k in enumerate(("dense", "ticket"))}
    frame["_o"] = frame["kind"].map(lambda k: order.get(k, 2))
    return frame.sort_values(["_o", "kind", "round", "seed", "bucket"]).drop(columns="_o").reset_index(drop=True)
