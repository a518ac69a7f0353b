"""The report's figures. Curves follow the LTH papers' conventions (FID against the percentage of
prunable weights remaining, log x axis). Every curve shows each seed (thin) and the mean over seeds
with its 95 % interval (band); controls are distinct markers; every FID axis names its extractor."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Optional, Any, Callable

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, NullFormatter, NullLocator  # noqa: E402

from pipeline.report.inputs import extractor_label

CONTROL_MARKERS = {"reinit": "s", "random": "^"}
CONTROL_COLORS = {"reinit": "tab:red", "random": "tab:orange"}
MEAN_COLOR, SEED_ALPHA = "tab:blue", 0.45


def macs_unit(macs: pd.Series) -> tuple[float, str]:
    return (1e9, "GMACs") if float(macs.max()) >= 1e9 else (1e6, "MMACs")


def extractors(df: pd.DataFrame) -> str:
    return ", ".join(sorted({extractor_label(n, h) for n, h in zip(df["feature_extractor"], df["extractor_sha256"])}))


def sparsity_axis(ax, remaining: pd.Series) -> None:
    """Log x of % weights remaining, dense on the left, ticks naming the sparsity."""
    ax.set_xscale("log")
    ticks = sorted({float(f"{r:.3g}") for r in remaining if r > 0}, reverse=True)
    if len(ticks) > 10:
        ticks = ticks[:: math.ceil(len(ticks) / 10)]
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.set_xticklabels([f"{t:.3g}%\n({100 - t:.3g}% sp.)" for t in ticks], fontsize=8)
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_minor_formatter(NullFormatter())
    lo, hi = min(ticks), max(ticks)
    ax.set_xlim(hi * 1.15, lo / 1.15)
    ax.set_xlabel("prunable weights remaining (%, log scale; sparsity in brackets)")
    ax.grid(True, alpha=0.3)


def log_axis_plain(ax) -> None:
    """Log x with plain numbers (1, 2, 5, 10, ...) rather than 2x10^0 labels."""
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())


def _marker(kind: str) -> str:
    return CONTROL_MARKERS.get(kind, "D")


def draw_curves(ax, df: pd.DataFrame, stats: pd.DataFrame, x: Callable[[pd.DataFrame], pd.Series], y: str,
                band: tuple[str, str] | str) -> None:
    """Main chain: one thin line per seed and the mean over seeds with a band; controls as markers.

    `band`: (low column, high column) of `stats`, or the name of a spread column (mean ± that)."""
    main = df[df["main"]]
    seeds = sorted(main["seed"].unique())
    for i, seed in enumerate(seeds):
        rows = main[main["seed"] == seed].sort_values("sparsity")
        ax.plot(x(rows), rows[y], color=plt.get_cmap("tab10")(i + 1), lw=1, alpha=SEED_ALPHA, marker=".",
                label=f"seed {seed}")
    m = stats[stats["main"]].sort_values("sparsity")
    lo, hi = (m[band[0]], m[band[1]]) if isinstance(band, tuple) else (m[y] - m[band], m[y] + m[band])
    what = "95 % CI of mean" if isinstance(band, tuple) else "± sd over seeds"
    ax.plot(x(m), m[y], color=MEAN_COLOR, lw=2.2, marker="o", label=f"mean over {len(seeds)} seed(s)")
    ax.fill_between(x(m), lo.fillna(m[y]), hi.fillna(m[y]), color=MEAN_COLOR, alpha=0.15, label=f"mean: {what}")
    for kind in sorted(set(df.loc[~df["main"], "kind"])):
        c, cs = df[df["kind"] == kind], stats[stats["kind"] == kind]
        ax.scatter(x(c), c[y], marker=_marker(kind), facecolors="none",
                   edgecolors=CONTROL_COLORS.get(kind, "tab:purple"), s=30, alpha=0.7,
                   label=f"{kind} control, per seed")
        clo, chi = (cs[band[0]], cs[band[1]]) if isinstance(band, tuple) else (cs[y] - cs[band], cs[y] + cs[band])
        err = [(cs[y] - clo).fillna(0).clip(lower=0), (chi - cs[y]).fillna(0).clip(lower=0)]
        ax.errorbar(x(cs), cs[y], yerr=err, fmt=_marker(kind), color=CONTROL_COLORS.get(kind, "tab:purple"), ms=8, capsize=3,
                    label=f"{kind} control, mean ({what})")


def plot_fid_vs_sparsity(df: pd.DataFrame, stats: pd.DataFrame, margin: Optional[float] = None,
                         stops: Optional[dict] = None):
    """`margin`: the non-inferiority margin in FID (a band above the mean dense FID); `stops`: seed ->
    (remaining %, FID) of the round where that seed's fixed sequence of tests stops (none: censored)."""
    fig, (ax_fid, ax_kid) = plt.subplots(1, 2, figsize=(14, 5.5))
    pct = lambda r: r["remaining_pct"]
    draw_curves(ax_fid, df, stats, pct, "fid", ("fid_low", "fid_high"))
    inf = stats[stats["main"]].sort_values("sparsity")
    if inf["fid_inf"].notna().any():
        ax_fid.plot(inf["remaining_pct"], inf["fid_inf"], color=MEAN_COLOR, ls=":", lw=1.5, label="mean FID∞ (N → ∞)")
    draw_curves(ax_kid, df, stats, pct, "kid_mean", "kid_sd")
    dense = stats[stats["kind"] == "dense"]
    if not dense.empty and margin is not None:
        d = float(dense["fid"].iloc[0])
        ax_fid.axhspan(d, d + margin, color="green", alpha=0.08, label=f"non-inferiority margin: ΔFID < {margin:.2f}")
    for i, (seed, point) in enumerate(sorted((stops or {}).items())):
        if point is not None:
            ax_fid.scatter([point[0]], [point[1]], marker="X", s=90, color=plt.get_cmap("tab10")(i + 1),
                           edgecolors="black", zorder=5, label=f"seed {seed}: fixed sequence stops")
    ext = extractors(df)
    for ax, what in ((ax_fid, "FID"), (ax_kid, "KID")):
        sparsity_axis(ax, df["remaining_pct"])
        ax.set_ylabel(f"{what} ({ext} features; lower is better)")
        ax.legend(fontsize=7)
    ax_fid.set_title("FID vs remaining weights: seeds, mean with 95 % CI, controls")
    ax_kid.set_title("KID vs remaining weights: seeds, mean ± sd over seeds, controls")
    fig.tight_layout()
    return fig


def plot_fid_vs_cost(df: pd.DataFrame, stats: pd.DataFrame):
    scale, unit = macs_unit(df["macs"])
    fig, (ax_macs, ax_store) = plt.subplots(1, 2, figsize=(14, 5.5))
    draw_curves(ax_macs, df, stats, lambda r: r["macs"] / scale, "fid", ("fid_low", "fid_high"))
    draw_curves(ax_store, df, stats, lambda r: r["storage_bytes"] / 1024, "fid", ("fid_low", "fid_high"))
    ext = extractors(df)
    ax_macs.set_xlabel(f"multiply-accumulates per image forward ({unit}, kept weights only, log scale)")
    ax_store.set_xlabel("compressed ticket size (KiB, log scale)")
    ax_macs.set_title("FID vs compute (seeds, mean with 95 % CI, controls)")
    ax_store.set_title("FID vs storage")
    for ax in (ax_macs, ax_store):
        log_axis_plain(ax)
        ax.set_ylabel(f"FID ({ext} features)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def heldout_ratio(by_t: pd.DataFrame) -> pd.DataFrame:
    """Per kind, round and t-bucket: loss / the same seed's dense loss in that bucket, mean over seeds."""
    dense = by_t[by_t["kind"] == "dense"].set_index(["seed", "bucket"])["loss"]
    rest = by_t[by_t["kind"] != "dense"].copy()
    key = pd.MultiIndex.from_frame(rest[["seed", "bucket"]])
    rest["ratio"] = rest["loss"].to_numpy() / dense.reindex(key).to_numpy()
    return (rest.dropna(subset=["ratio"]).groupby(["kind", "round", "bucket", "t_lo", "t_hi"], as_index=False)
            .agg(ratio=("ratio", "mean"), sparsity=("sparsity", "mean"), seeds=("seed", "nunique")))


def plot_heldout_by_t(by_t: pd.DataFrame):
    fig, ax = plt.subplots(figsize=(9, 5))
    ratio = heldout_ratio(by_t) if not by_t.empty else pd.DataFrame()
    if ratio.empty:
        ax.text(0.5, 0.5, "no per-timestep held-out losses in the metrics files\n(heldout_loss_by_t)",
                ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return fig
    tickets = ratio[ratio["kind"] == "ticket"]
    rounds = sorted(tickets["round"].unique())
    cmap = plt.get_cmap("viridis")
    for i, k in enumerate(rounds):
        r = tickets[tickets["round"] == k].sort_values("bucket")
        ax.plot((r["t_lo"] + r["t_hi"]) / 2, r["ratio"], marker="o", color=cmap(i / max(len(rounds) - 1, 1)),
                label=f"ticket round {k} ({100 * r['sparsity'].mean():.1f} % sparse, {int(r['seeds'].max())} seed(s))")
    for (kind, k), r in ratio[ratio["kind"] != "ticket"].groupby(["kind", "round"]):
        r = r.sort_values("bucket")
        ax.plot((r["t_lo"] + r["t_hi"]) / 2, r["ratio"], ls="--", marker=_marker(kind),
                color=CONTROL_COLORS.get(kind, "tab:purple"), label=f"{kind} control round {k} ({int(r['seeds'].max())} seed(s))")
    ax.axhline(1.0, color="gray", ls="--", lw=1, label="dense")
    ax.set_xlabel("diffusion timestep t (bucket centre; 0 = clean image)")
    ax.set_ylabel("held-out denoising loss / dense (same seed), mean over seeds")
    ax.set_title("Where along the noise scale sparse nets lose quality")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def _block_colors(blocks: list[str]) -> dict[str, Any]:
    order = list(dict.fromkeys(blocks))
    cmap = plt.get_cmap("tab10" if len(order) <= 10 else "tab20")
    return {b: cmap(i % cmap.N) for i, b in enumerate(order)}


def _bars_by_block(ax, names: list[str], values: list[float], legend: bool = True) -> None:
    from pipeline.similarity.naming import block_of  # lazy: the similarity package owns the block naming

    blocks = [block_of(n) for n in names]
    colors = _block_colors(blocks)
    ax.bar(range(len(names)), values, color=[colors[b] for b in blocks])
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=90, fontsize=6)
    ax.set_xlim(-0.6, len(names) - 0.4)
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in colors.values()]
    if legend:
        ax.legend(handles, list(colors), title="block", fontsize=7, loc="upper left", bbox_to_anchor=(1.005, 1.0))


def plot_layer_sparsity(mask_report: dict[str, Any]):
    layers = mask_report["layers"]  # insertion order is the model's forward order
    names = list(layers)
    fig, ax = plt.subplots(figsize=(max(8.0, 0.2 * len(names) + 2), 5))
    _bars_by_block(ax, names, [100 * float(layers[n]["sparsity"]) for n in names])
    overall = 100 * float(mask_report["sparsity"])
    ax.axhline(overall, ls="--", color="black", lw=1)
    ax.text(len(names) - 0.5, overall, f" overall {overall:.1f}%", va="bottom", ha="right", fontsize=8)
    ax.set_ylim(0, 100)
    ax.set_ylabel("weights pruned in the layer (%)")
    ax.set_xlabel("prunable layer, forward order")
    ax.set_title(f"Per-layer sparsity: seed {mask_report.get('seed', '?')}, round {mask_report.get('round', '?')} "
                 f"ticket ({mask_report.get('schedule', '?')} schedule, {overall:.1f}% of prunable weights pruned)")
    fig.tight_layout()
    return fig


def plot_layer_rates(rates: dict[str, Any]):
    agreement, weights = rates.get("agreement", {}), rates.get("weights", {})
    names = list(agreement) or list(weights)
    fig, (ax_a, ax_w) = plt.subplots(2, 1, figsize=(max(8.0, 0.2 * len(names) + 2), 8), sharex=True)
    _bars_by_block(ax_a, names, [float(agreement.get(n, float("nan"))) for n in names])
    _bars_by_block(ax_w, names, [float(weights.get(n, float("nan"))) for n in names], legend=False)
    metric = rates.get("metric", "agreement")
    ax_a.set_ylabel(f"ticket agreement ({metric})")
    ax_a.set_title(f"Two seeds' tickets: per-layer agreement ({metric}) and the layerwise schedule's "
                   f"relative pruning weight (strength {rates.get('strength', '?')})", fontsize=10)
    ax_w.set_ylabel("relative pruning weight (higher = pruned harder)")
    ax_w.set_xlabel("prunable layer, forward order")
    ax_a.tick_params(labelbottom=False)
    fig.tight_layout()
    return fig


def plot_sample_grids(panels: list[tuple[str, Path]], ncols: int):
    """panels: (title, samples.png) in row-major order, `ncols` per row."""
    import matplotlib.image as mpimg

    nrows = math.ceil(len(panels) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 4.4 * nrows), squeeze=False, layout="constrained")
    for ax in axes.flat:
        ax.axis("off")
    for ax, (title, path) in zip(axes.flat, panels):
        img = mpimg.imread(path)
        ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(title, fontsize=8, wrap=True)
    fig.suptitle("DDIM samples from the EMA model (seed of the first row shown per column)")
    return fig




def plot_convergence(conv) -> "plt.Figure":
    """The dense run's held-out loss (EMA weights, shared items) at the convergence checks, per seed,
    with ± 2 SE, and the check's verdict in the title."""
    fig, ax = plt.subplots(figsize=(6.5, 4))
    if conv is None:
        ax.text(0.5, 0.5, "no held-out curve (eval_dense's paired.json)", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return fig
    for i, (seed, c) in enumerate(conv.per_seed):
        steps, means, ses = zip(*c.curve)
        ax.errorbar(steps, means, yerr=[2 * s for s in ses], marker="o", capsize=3, color=plt.get_cmap("tab10")(i + 1),
                    label=f"seed {seed}: {'converged' if c.converged else 'not converged'}")
    ax.set_xlabel("dense training step")
    ax.set_ylabel("held-out denoising loss (EMA)")
    ax.set_title(("converged" if conv.converged else "NOT converged") + f" in {conv.n_converged} of {conv.n_seeds} seeds",
                 fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_claims_forest(rows: list[dict[str, Any]]):
    """Fallback for the similarity module's plot_claims: each similarity claim's effect and 95 % interval."""
    fig, ax = plt.subplots(figsize=(9, 0.6 * len(rows) + 1.6))
    if not rows:
        ax.text(0.5, 0.5, "no similarity claims (artifacts/similarity/summary.json 'claims')", ha="center",
                va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return fig
    for i, r in enumerate(rows):
        lo, hi = r["ci"]
        ax.errorbar([r["effect"]], [i], xerr=[[r["effect"] - lo], [hi - r["effect"]]], fmt="o", capsize=4,
                    color="black")
    ax.axvline(0.0, color="gray", ls="--", lw=1)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([f"{r['claim']}\n({r['verdict']})" for r in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("effect (agreement difference; > 0 is the paper's direction), 95 % interval")
    ax.set_title("Ticket similarity claims")
    ax.grid(True, axis="x", alpha=0.3)
    fig.tight_layout()
    return fig
