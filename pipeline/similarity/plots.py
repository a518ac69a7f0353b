"""Figures of ticket similarity: per-block heatmap, agreement vs depth (both averaged over the ticket
pairs when the table has a `pair` column), and the claims figure (`plot_claims`, drawn from
summary.json alone so the report can redraw it)."""
from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

import numpy as np
import pandas as pd

from pipeline.similarity.naming import block_rank
from pipeline.similarity.claims import chance_corrected

_LABELS = {"kappa": "Cohen's kappa", "jaccard": "Jaccard (IoU of kept weights)", "hamming": "Hamming distance",
           "sign_agreement": "sign agreement", "cosine": "cosine similarity", "jaccard_chance": "chance Jaccard"}
_CORRECTED_LABELS = {"kappa": "Cohen's kappa", "jaccard": "Jaccard minus chance"}


def mean_over_pairs(df: pd.DataFrame) -> pd.DataFrame:
    """The similarity table with each (round, layer, metric) value averaged over the ticket pairs
    (a table without a `pair` column is returned as is)."""
    if "pair" not in df.columns:
        return df
    keys = [c for c in ("round", "layer", "block", "depth", "metric") if c in df.columns]
    return df.groupby(keys, as_index=False, sort=False)["value"].mean()


def _round_label(k: int, round_labels: Optional[Mapping[int, str]]) -> str:
    return (round_labels or {}).get(int(k), f"round {int(k)}")


def plot_heatmap(df: pd.DataFrame, metric: str = "kappa", *, title: str = "",
                 round_labels: Optional[Mapping[int, str]] = None):
    """Blocks in forward order (x) by rounds (y): mean `metric` over each block's layers and the
    ticket pairs (for jaccard, Jaccard minus its chance value, like every agreement the summary reports)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    df = mean_over_pairs(df)
    sel = chance_corrected(df, metric) if metric == "jaccard" else df[df["metric"] == metric]
    table = sel.pivot_table(index="round", columns="block", values="value", aggfunc="mean")
    table = table[sorted(table.columns, key=block_rank)].sort_index()
    fig, ax = plt.subplots(figsize=(1.0 + 0.8 * table.shape[1], 1.6 + 0.55 * table.shape[0]))
    im = ax.imshow(table.to_numpy(float), aspect="auto", cmap="viridis")
    lo, hi = np.nanmin(table.to_numpy(float)), np.nanmax(table.to_numpy(float))
    digits = 2 if hi - lo >= 0.05 else 3  # near-identical tickets still show their differences
    for i in range(table.shape[0]):
        for j in range(table.shape[1]):
            v = table.iat[i, j]
            ax.text(j, i, f"{v:.{digits}f}", ha="center", va="center", fontsize=8,
                    color="white" if v < (lo + hi) / 2 else "black")
    ax.set_xticks(range(table.shape[1]), table.columns, rotation=45, ha="right")
    ax.set_yticks(range(table.shape[0]), [_round_label(k, round_labels) for k in table.index])
    ax.set_xlabel("U-Net block (forward order: input -> down -> mid -> up -> output)")
    ax.set_ylabel("IMP round")
    label = _CORRECTED_LABELS.get(metric, _LABELS.get(metric, metric)) if metric == "jaccard" else _LABELS.get(metric, metric)
    ax.set_title(f"Ticket agreement per block: {label}" + (f"\n{title}" if title else ""))
    fig.colorbar(im, ax=ax, label=f"{label}, mean over the block's layers (unitless)")
    return fig


def plot_depth(df: pd.DataFrame, metric: str | Sequence[str] = "kappa", *, title: str = "",
               round_labels: Optional[Mapping[int, str]] = None):
    """`metric` (one name or several, one panel each) against layer depth, one line per round (the
    mean over the ticket pairs), with block boundaries marked; a Jaccard panel also shows the chance
    level as dotted lines."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    df = mean_over_pairs(df)
    metrics = [metric] if isinstance(metric, str) else list(metric)
    fig, axes = plt.subplots(len(metrics), 1, figsize=(10, 3.2 * len(metrics)), sharex=True, squeeze=False)
    layers = df.drop_duplicates("layer").sort_values("depth")
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, name in zip(axes[:, 0], metrics):
        for i, (k, part) in enumerate(df.groupby("round", sort=True)):
            c = colors[i % len(colors)]
            rows = part[part["metric"] == name].sort_values("depth")
            ax.plot(rows["depth"], rows["value"], marker=".", color=c, label=_round_label(k, round_labels))
            if name == "jaccard":
                ch = part[part["metric"] == "jaccard_chance"].sort_values("depth")
                ax.plot(ch["depth"], ch["value"], ls=":", color=c,
                        label=f"{_round_label(k, round_labels)}: chance (independent masks)")
        _mark_blocks(ax, layers)
        ax.set_ylabel(f"{_LABELS.get(name, name)} (unitless)")
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=7, loc="best")
    axes[-1, 0].set_xlabel("layer depth (index of the prunable layer in forward order)")
    axes[0, 0].set_title("Ticket agreement vs depth" + (f"\n{title}" if title else ""), pad=18)
    fig.tight_layout()
    return fig


def _mark_blocks(ax, layers: pd.DataFrame) -> None:
    """Dashed lines between blocks, block names along the top."""
    depth, block = layers["depth"].to_numpy(), layers["block"].to_numpy()
    starts = [0] + [i for i in range(1, len(block)) if block[i] != block[i - 1]]
    for s in starts[1:]:
        ax.axvline(depth[s] - 0.5, color="grey", ls="--", lw=0.7)
    ends = starts[1:] + [len(block)]
    for s, e in zip(starts, ends):
        ax.text((depth[s] + depth[e - 1]) / 2, 1.01, block[s], transform=ax.get_xaxis_transform(),
                ha="center", va="bottom", fontsize=7)


_CLAIM_TITLES = {"upstream_vs_downstream": "upstream - downstream\n(forward-order halves)",
                 "without_skip": "upstream - downstream\nwithout 1x1 skip convs",
                 "resolution_matched": "encoder - decoder\n(matched resolution)",
                 "fan_in": "upstream - downstream\n(log fan-in partialled out)",
                 "beyond_magnitude": "observed - predicted kappa\n(beyond the starts' magnitudes)"}


def _claim_rows(claims: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    rows = []
    for name in ("upstream_vs_downstream", "without_skip", "resolution_matched", "fan_in", "beyond_magnitude"):
        if name == "without_skip":
            c = (claims.get("upstream_vs_downstream") or {}).get("without_skip")
            if c is not None and c.get("layers_left_out"):
                rows.append((name, c))
        elif name in claims:
            rows.append((name, claims[name]))
    return rows


def _errorbar(ax, x, y, ci, **kw) -> None:
    """A point with its interval, or a bare point where there is none (one pair of tickets)."""
    ci = np.asarray([np.nan, np.nan] if ci is None else ci, float).reshape(-1, 2)
    x, y = np.atleast_1d(np.asarray(x, float)), np.atleast_1d(np.asarray(y, float))
    err = None if np.isnan(ci).all() else [y - ci[:, 0], ci[:, 1] - y]
    ax.errorbar(x, y, yerr=err, **kw)


def plot_claims(summary: Mapping[str, Any], *, title: str = ""):
    """Two panels from summary.json's `claims` (the last round): per resolution level, mean
    encoder and decoder agreement over the ticket pairs with their seed-level intervals and the
    magnitude baseline (hollow markers: each ticket's agreement with its own start's magnitude mask,
    same layers); and every claim's effect over pairs with its interval, each pair's value (small
    dots) and the layer-type-stratified permutation p-value."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    claims, metric = summary["claims"], summary.get("metric", "kappa")
    label = _CORRECTED_LABELS.get(metric, metric)
    n_pairs = summary.get("n_pairs")
    over = f"mean over {n_pairs} ticket pairs" if n_pairs else "mean"
    res = claims["resolution_matched"]
    fig, (ax, fx) = plt.subplots(1, 2, figsize=(12, 4.4), gridspec_kw={"width_ratios": [1.3, 1]})
    x = np.arange(len(res["levels"]))
    for side, dx, color in (("encoder", -0.12, "C0"), ("decoder", 0.12, "C1")):
        for i, lv in enumerate(res["levels"]):
            _errorbar(ax, i + dx, lv[f"{side}_mean"], lv.get(f"{side}_ci"), fmt="o", color=color, capsize=3,
                      label=f"{side} ({over}, 95 % CI over seeds)" if i == 0 else None)
        base = [lv.get(f"{side}_baseline") for lv in res["levels"]]
        if base and all(b is not None for b in base):
            ax.plot(x + dx, base, "o", mfc="none", color=color, ms=9,
                    label=f"{side}: tickets vs own start's magnitudes")
    ax.axhline(0, color="grey", lw=0.8, ls=":")
    names = [f"{lv['encoder']} vs {lv['decoder']}" + (f"\n{lv['resolution']} px" if lv.get("resolution") else "")
             for lv in res["levels"]]
    ax.set_xticks(x, names, fontsize=8)
    ax.set_xlabel("resolution level (encoder block vs the decoder block at the same feature-map size)")
    ax.set_ylabel(f"{label}, mean over the block's layers (0 = chance)")
    ax.set_title(f"Ticket agreement per level, round {res['round']}", fontsize=10)
    if res["levels"]:
        ax.legend(fontsize=7, loc="best")
    ax.grid(alpha=0.3)

    rows = _claim_rows(claims)
    for i, (name, c) in enumerate(rows):
        if c.get("effect") is None:
            fx.text(0, i, "not available", ha="center", va="center", fontsize=8, color="grey")
            continue
        ci = c.get("ci")
        err = None if ci is None else [[c["effect"] - ci[0]], [ci[1] - c["effect"]]]
        fx.errorbar([c["effect"]], [i], xerr=err, fmt="s", color="k", capsize=4)
        per_pair = list((c.get("pairs") or {}).values())
        if len(per_pair) > 1:
            fx.plot(per_pair, [i + 0.18] * len(per_pair), ".", color="C3", ms=5,
                    label="each ticket pair" if i == 0 else None)
        right = ci[1] if ci is not None else max([c["effect"], *per_pair])
        p = c.get("p_value")
        fx.annotate("no p" if p is None else f"p = {p:.2g}", (right, i), xytext=(6, 0), textcoords="offset points",
                    va="center", fontsize=8)
    fx.axvline(0, color="grey", lw=0.8, ls=":")
    fx.set_yticks(range(len(rows)), [_CLAIM_TITLES[name] for name, _ in rows], fontsize=8)
    fx.set_ylim(len(rows) - 0.5, -0.5)
    fx.set_xlabel(f"effect ({over}; > 0: the paper's direction), 95 % CI over seeds")
    fx.set_title("Claims (p: permutation within layer types; magnitude: sign-flip over layers)", fontsize=9)
    fx.grid(alpha=0.3, axis="x")
    if any(len(c.get("pairs") or {}) > 1 for _, c in rows):
        fx.legend(fontsize=7, loc="best")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_rates(order, preview, uniform, params, seeds):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = np.arange(len(order))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.28 * len(order) + 2), 4.2))
    ax.bar(x - 0.2, [uniform[n] * 100 for n in order], width=0.4, label="uniform")
    ax.bar(x + 0.2, [preview[n] * 100 for n in order], width=0.4,
           label=f"layerwise ({params.similarity.metric}, strength {params.similarity.strength:g})")
    ax.set_xticks(x, order, rotation=90, fontsize=6)
    ax.set_xlabel("prunable layer (forward order)")
    ax.set_ylabel("weights removed in round 1 (% of the layer)")
    ax.set_title(f"Per-layer pruning of round 1 at equal global count (rate {params.sparsity.rate:g}); "
                 f"agreement of seeds {seeds[0]} vs {seeds[1]}", fontsize=9)
    ax.legend(fontsize=8)
    return fig
