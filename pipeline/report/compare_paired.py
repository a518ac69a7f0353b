"""The layerwise claim on the FID axis: layerwise vs uniform at equal sparsity, paired on seed.

Layerwise removes uniform's total each round, so round k of both schedules has the same global sparsity
and one seed shares its dense run, θ0 and data order across the two: per round, ΔFID_s = FID(layerwise,
s) − FID(uniform, s) is a paired difference. Its mean over seeds gets a Student-t interval with n − 1 df
and a two-sided p; Holm's step-down adjustment runs over the rounds (a small private helper: the
study's shared Holm lives in pipeline.stats), and each round's verdict uses the adjusted p.
"""
from __future__ import annotations

import math
from typing import Optional

import pandas as pd
from scipy import stats

from pipeline.stats.verdicts import CONTRADICTED, INCONCLUSIVE, SUPPORTED

ALPHA = 0.05
RULE = ("per round, ΔFID = FID(layerwise) − FID(uniform) paired on seed (same dense run, θ0 and data order; equal "
        "global sparsity by construction); mean over seeds with a Student-t 95 % interval (n − 1 df) and two-sided "
        "p; Holm over the rounds; supported (layerwise lower FID) when the Holm-adjusted p < 0.05 and the mean "
        "is < 0, contradicted when adjusted p < 0.05 and the mean is > 0, else inconclusive")
COLUMNS = ["round", "seeds", "sparsity_uniform", "sparsity_layerwise", "fid_uniform", "fid_layerwise", "delta_fid",
           "delta_low", "delta_high", "p", "p_holm", "verdict"]


def _holm(p: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values (NaN stays NaN and is not counted)."""
    idx = [i for i, v in enumerate(p) if math.isfinite(v)]
    order = sorted(idx, key=lambda i: p[i])
    out, running = [math.nan] * len(p), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(order) - rank) * p[i]))
        out[i] = running
    return out


def _pick(exps: pd.DataFrame, schedule: str) -> Optional[str]:
    names = exps.loc[exps["schedule"] == schedule, "experiment"].tolist()
    return names[0] if names else None


def paired_rounds(rows: pd.DataFrame, exps: pd.DataFrame) -> pd.DataFrame:
    """One row per ticket round common to the first uniform and the first layerwise experiment (COLUMNS);
    empty when either is missing."""
    lw, un = _pick(exps, "layerwise"), _pick(exps, "uniform")
    if lw is None or un is None:
        return pd.DataFrame(columns=COLUMNS)
    tick = rows[rows["kind"] == "ticket"]
    a = tick[tick["experiment"] == lw].set_index(["round", "seed"])
    b = tick[tick["experiment"] == un].set_index(["round", "seed"])
    both = a[["fid", "sparsity"]].add_suffix("_lw").join(b[["fid", "sparsity"]].add_suffix("_un"), how="inner")
    out = []
    for k, g in both.groupby(level="round", sort=True):
        d = (g["fid_lw"] - g["fid_un"]).to_numpy(float)
        n, mean = len(d), float(d.mean())
        if n >= 2:
            se = float(d.std(ddof=1)) / math.sqrt(n)
            q = float(stats.t.ppf(0.975, n - 1))
            low, high = mean - q * se, mean + q * se
            p = float(2 * stats.t.sf(abs(mean) / se, n - 1)) if se > 0 else (1.0 if mean == 0 else 0.0)
        else:
            low = high = p = math.nan
        out.append({"round": int(k), "seeds": n, "sparsity_uniform": float(g["sparsity_un"].mean()),
                    "sparsity_layerwise": float(g["sparsity_lw"].mean()), "fid_uniform": float(g["fid_un"].mean()),
                    "fid_layerwise": float(g["fid_lw"].mean()), "delta_fid": mean, "delta_low": low,
                    "delta_high": high, "p": p})
    table = pd.DataFrame(out, columns=COLUMNS[:-2])
    table["p_holm"] = _holm(table["p"].tolist())
    table["verdict"] = [SUPPORTED if ph < ALPHA and m < 0 else CONTRADICTED if ph < ALPHA and m > 0 else INCONCLUSIVE
                        for ph, m in zip(table["p_holm"].fillna(1.0), table["delta_fid"])]
    return table[COLUMNS]


def paired_markdown(table: pd.DataFrame, layerwise: str = "layerwise", uniform: str = "uniform") -> list[str]:
    lines = ["### Layerwise vs uniform at equal sparsity, paired on seed", ""]
    if table.empty:
        return lines + ["No layerwise and uniform runs with common ticket rounds among these runs.", ""]
    lines += ["| round | seeds | sparsity uniform / layerwise (%) | FID uniform | FID layerwise | ΔFID (lw − uni) "
              "[95 % CI] | p | Holm p | verdict |", "|" + "---|" * 9]
    f = lambda v, s: "–" if not (isinstance(v, (int, float)) and math.isfinite(v)) else format(v, s)
    for _, r in table.iterrows():
        lines.append(f"| {r['round']} | {r['seeds']} | {f(100 * r['sparsity_uniform'], '.2f')} / "
                     f"{f(100 * r['sparsity_layerwise'], '.2f')} | {f(r['fid_uniform'], '.2f')} | "
                     f"{f(r['fid_layerwise'], '.2f')} | {f(r['delta_fid'], '+.2f')} [{f(r['delta_low'], '+.2f')}, "
                     f"{f(r['delta_high'], '+.2f')}] | {f(r['p'], '.2g')} | {f(r['p_holm'], '.2g')} | "
                     f"{r['verdict']} |")
    return lines + ["", f"Rule: {RULE}.", ""]

