"""Numbers of the report: seed means with spread and interval, summary metrics, the tables."""
from __future__ import annotations

import math
from typing import Any, Optional

import pandas as pd

from pipeline.core.config import Params
from pipeline.report.fid_intervals import mean_fids
from pipeline.report.inputs import extractor_label, round_ids
from pipeline.report.render import Table, fmt

# Columns of reports/fid_vs_sparsity.csv (declared as a DVC plot, so keep them stable).
CSV_COLUMNS = ["schedule", "rewind", "kind", "seed", "round", "sparsity", "remaining_pct", "fid", "fid_ci_low",
               "fid_ci_high", "fid_inf", "kid_mean", "macs", "storage_bytes"]


def seed_stats(df: pd.DataFrame, runs: Optional[dict] = None, level: float = 0.95) -> pd.DataFrame:
    """Per (kind, round): seed count, means, between-seed sd, and the interval of the mean FID (with
    `runs`, the FID split errors on the shared samples: between-seed variance plus the shared-noise
    term) and of FID∞, both truncated at 0 (pipeline.report.fid_intervals).
    Main chain first, then controls."""
    out = []
    for (kind, k), g in df.groupby(["kind", "round"], sort=False):
        g = g.sort_values("seed")
        fid, inf = mean_fids(g, runs, level)
        sd = lambda c: float(g[c].std(ddof=1)) if len(g) > 1 else math.nan
        out.append({"kind": kind, "round": int(k), "main": bool(g["main"].iloc[0]), "seeds": len(g),
                    "seed_list": [int(s) for s in g["seed"]], "sparsity": float(g["sparsity"].mean()),
                    "remaining_pct": float(g["remaining_pct"].mean()),
                    "fid": fid.mean, "fid_sd": sd("fid"), "fid_low": fid.low, "fid_high": fid.high, "fid_rule": fid.rule,
                    "fid_inf": inf.mean, "fid_inf_sd": sd("fid_inf"), "fid_inf_low": inf.low, "fid_inf_high": inf.high,
                    "kid_mean": float(g["kid_mean"].mean()), "kid_sd": sd("kid_mean"),
                    "macs": float(g["macs"].mean()), "storage_bytes": float(g["storage_bytes"].mean()),
                    "params_kept": float(g["params_kept"].mean()),
                    "global_sparsity": float((1 - g["params_kept"] / g["params_total"]).mean()),
                    "heldout_loss": float(g["heldout_loss"].mean()), "heldout_loss_sd": sd("heldout_loss"),
                    "extractor": ", ".join(sorted({extractor_label(n, h) for n, h in
                                                   zip(g["feature_extractor"], g["extractor_sha256"])}))})
    frame = pd.DataFrame(out)
    frame["_o"] = (~frame["main"]).astype(int)
    return frame.sort_values(["_o", "kind", "round"]).drop(columns="_o").reset_index(drop=True)


def main_run_means(df: pd.DataFrame) -> pd.DataFrame:
    """The main run per round, averaged over eval seeds (one seed: that seed's numbers)."""
    main = df[df["main"]]
    cols = ["sparsity", "fid", "kid_mean", "macs", "storage_bytes", "params_kept", "params_total", "heldout_loss"]
    return main.groupby("round", as_index=False)[cols].mean().sort_values("round")


def summary_metrics(params: Params, df: pd.DataFrame, findings: list[dict[str, Any]],
                    frontier: dict[str, Any]) -> dict[str, Any]:
    means = main_run_means(df)
    dense, final = means.iloc[0], means.iloc[-1]
    main = df[df["main"]]
    out: dict[str, Any] = {
        "schedule": params.sparsity.schedule,
        "rewind": params.rewind.mode,
        "feature_extractor": str(main["feature_extractor"].iloc[0]),
        "extractor_sha256": str(main["extractor_sha256"].iloc[0]),
        "num_samples": int(main["num_samples"].iloc[0]),
        "eval_seeds": list(params.imp.seeds),
        "dense_fid": float(dense["fid"]),
        "final_round": int(final["round"]),
        "final_fid": float(final["fid"]),
        "final_sparsity": float(final["sparsity"]),
        "final_global_sparsity": float(1 - final["params_kept"] / final["params_total"]),
        "final_macs": float(final["macs"]),
        "margin_fraction": params.report.margin,
        **frontier,
        "findings": findings,
    }
    return out


def csv_table(params: Params, df: pd.DataFrame) -> pd.DataFrame:
    """Tidy rows for `dvc plots`: every point of fid_vs_sparsity.png, main chain (dense first) then controls."""
    out = df.copy()
    out.loc[out["kind"] == "dense", "schedule"] = params.sparsity.schedule  # the dense run starts the main line
    out = out.sort_values(["main", "kind", "seed", "sparsity"], ascending=[False, True, True, True])
    out["remaining_pct"] = out["remaining_pct"].round(6)
    return out[CSV_COLUMNS].reset_index(drop=True)


# -- text tables ---------------------------------------------------------------------------------------
def interval(low: float, high: float, spec: str = ".2f") -> str:
    return f"[{fmt(low, spec)}, {fmt(high, spec)}]" if not (math.isnan(low) or math.isnan(high)) else "[–]"


def with_interval(value: float, low: float, high: float, spec: str = ".2f") -> str:
    return f"{fmt(value, spec)} {interval(low, high, spec)}"


def mean_spread(mean: float, sd: float, n: int, spec: str) -> str:
    """'m ± sd' over seeds; one seed has no spread to show."""
    return f"{fmt(mean, spec)} ± {fmt(sd, spec)}" if n > 1 else f"{fmt(mean, spec)} ± – (1 seed)"


def kind_label(kind: str, rewind: str = "") -> str:
    return {"dense": "dense", "ticket": "ticket"}.get(kind, f"control: {kind}") + \
        (f" (rewind {rewind})" if rewind and kind == "ticket" else "")


def round_table(rows: pd.DataFrame, macs_scale: float, macs_unit: str) -> Table:
    """Per seed and round; every FID with its 95 % bootstrap interval, FID∞ beside it, and the extractor."""
    header = ["seed", "kind", "round", "sparsity (%)", "of all weights (%)", "params kept", f"MACs ({macs_unit})", "storage (KiB)",
              "FID [95 % CI]", "FID∞ [95 % CI]", "extractor", "KID", "heldout loss ± SE"]
    body = []
    for _, r in rows.sort_values(["main", "kind", "seed", "round"], ascending=[False, True, True, True]).iterrows():
        kid = fmt(r["kid_mean"], ".4f") + (f" ± {fmt(r['kid_std'], '.4f')}" if pd.notna(r["kid_std"]) else "")
        loss = fmt(r["heldout_loss"], ".5f") + (f" ± {fmt(r['heldout_loss_se'], '.5f')}"
                                               if pd.notna(r["heldout_loss_se"]) else "")
        body.append([str(r["seed"]), kind_label(r["kind"], r["rewind"]), str(r["round"]), fmt(100 * r["sparsity"], ".2f"),
                     fmt(100 * (1 - r["params_kept"] / r["params_total"]), ".2f"),
                     fmt(r["params_kept"], ",.0f"), fmt(r["macs"] / macs_scale, ".3f"), fmt(r["storage_bytes"] / 1024, ".1f"),
                     with_interval(r["fid"], r["fid_ci_low"], r["fid_ci_high"]),
                     with_interval(r["fid_inf"], r["fid_inf_low"], r["fid_inf_high"]),
                     extractor_label(r["feature_extractor"], r["extractor_sha256"]), kid, loss])
    return Table(header, body)


def mean_table(stats: pd.DataFrame, macs_scale: float, macs_unit: str) -> Table:
    """Per kind and round over seeds: mean ± sd (between seeds), and the 95 % interval of the mean FID."""
    header = ["kind", "round", "seeds", "sparsity (%)", "of all weights (%)", f"MACs ({macs_unit})", "FID mean ± sd",
              "FID 95 % CI of mean", "FID∞ mean ± sd [95 % CI]", "extractor", "KID mean ± sd",
              "heldout loss mean ± sd"]
    body = []
    for _, s in stats.iterrows():
        n = int(s["seeds"])
        body.append([kind_label(s["kind"]), str(s["round"]), str(n), fmt(100 * s["sparsity"], ".2f"),
                     fmt(100 * s["global_sparsity"], ".2f"),
                     fmt(s["macs"] / macs_scale, ".3f"), mean_spread(s["fid"], s["fid_sd"], n, ".2f"),
                     interval(s["fid_low"], s["fid_high"]),
                     f"{mean_spread(s['fid_inf'], s['fid_inf_sd'], n, '.2f')} {interval(s['fid_inf_low'], s['fid_inf_high'])}",
                     s["extractor"], mean_spread(s["kid_mean"], s["kid_sd"], n, ".4f"),
                     mean_spread(s["heldout_loss"], s["heldout_loss_sd"], n, ".5f")])
    return Table(header, body)


def mask_table(params: Params, masks: dict) -> Table:
    rounds = round_ids(params)
    return Table(["round"] + [f"seed {s} sparsity (%)" for s in params.imp.seeds],
                 [[str(k)] + [fmt(100 * masks[(s, k)]["sparsity"], ".2f") for s in params.imp.seeds]
                  for k in rounds[1:]])
