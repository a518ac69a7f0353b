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
SHORT_X = "prunable weights remaining (%, log; sparsity below)"


def macs_unit(macs: pd.Series) -> tuple[float, str]:
    return (1e9, "GMACs") if float(macs.max()) >= 1e9 else (1e6, "MMACs")


def extractors(df: pd.DataFrame) -> str:
    return ", ".join(sorted({extractor_label(n, h) for n, h in zip(df["feature_extractor"], df["extractor_sha256"])}))


def sparsity_axis(ax, remaining: pd.Series,
                  label: str = "prunable weights remaining (%, log scale; sparsity in brackets)") -> None:
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
    ax.set_xlabel(label, fontsize=8)
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
                band: tuple[str, str] | str, controls: bool = True) -> None:
    """Main chain: one thin line per seed (gid 'seed N', one legend entry for all) and the mean over
    seeds with a band; controls as markers (unless `controls` is False: they get their own panel).

    `band`: (low column, high column) of `stats`, or the name of a spread column (mean ± that)."""
    main = df[df["main"]]
    seeds = sorted(main["seed"].unique())
    for i, seed in enumerate(seeds):
        rows = main[main["seed"] == seed].sort_values("sparsity")
        line, = ax.plot(x(rows), rows[y], color="gray", lw=0.9, alpha=SEED_ALPHA, marker=".",
                        label=f"each of {len(seeds)} seed(s)" if i == 0 else "_nolegend_")
        line.set_gid(f"seed {seed}")
    m = stats[stats["main"]].sort_values("sparsity")
    lo, hi = (m[band[0]], m[band[1]]) if isinstance(band, tuple) else (m[y] - m[band], m[y] + m[band])
    what = "95 % CI of mean" if isinstance(band, tuple) else "± sd over seeds"
    ax.plot(x(m), m[y], color=MEAN_COLOR, lw=2.2, marker="o", label=f"mean over {len(seeds)} seed(s)")
    ax.fill_between(x(m), lo.fillna(m[y]), hi.fillna(m[y]), color=MEAN_COLOR, alpha=0.15, label=f"mean: {what}")
    if not controls:
        return
    for kind in sorted(set(df.loc[~df["main"], "kind"])):
        c, cs = df[df["kind"] == kind], stats[stats["kind"] == kind]
        clo, chi = (cs[band[0]], cs[band[1]]) if isinstance(band, tuple) else (cs[y] - cs[band], cs[y] + cs[band])
        err = [(cs[y] - clo).fillna(0).clip(lower=0), (chi - cs[y]).fillna(0).clip(lower=0)]
        ax.scatter(x(c), c[y], marker=_marker(kind), facecolors="none",
                   edgecolors=CONTROL_COLORS.get(kind, "tab:purple"), s=30, alpha=0.7, label="_nolegend_")
        ax.errorbar(x(cs), cs[y], yerr=err, fmt=_marker(kind), color=CONTROL_COLORS.get(kind, "tab:purple"), ms=8, capsize=3,
                    label=f"{kind} control: seeds (open), mean ({what})")


def legend_below(ax, ncol: int = 2, below: float = -0.3) -> None:
    """The legend under the axes (and under their tick labels and x label), never over the data."""
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(handles, labels, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, below), ncol=ncol,
                  frameon=False)


def plot_fid_vs_sparsity(df: pd.DataFrame, stats: pd.DataFrame, margin: Optional[float] = None,
                         stops: Optional[dict] = None, deltas: Optional[dict] = None):
    """Three panels: the main chain's FID (each seed, mean with interval), ΔFID ticket − dense with the
    non-inferiority margin band, and the controls beside the ticket at their rounds (their FIDs can be
    ten times the ticket's, so they would squash the claim's region on a shared axis).

    `margin`: the non-inferiority margin in FID; `stops`: seed -> (remaining %, FID) of the round where
    that seed's fixed sequence of tests stops (none: censored); `deltas`: round -> SeedEstimate of
    ΔFID ticket − dense over seeds (its per-seed values drawn thin)."""
    controls = sorted(set(df.loc[~df["main"], "kind"]))
    ncols = 3 if controls else 2
    # sized for the page's first screen: about 840 px wide in the HTML, so the fonts stay legible
    fig, axes = plt.subplots(1, ncols, figsize=(3.7 * ncols, 3.5), gridspec_kw={"width_ratios": [1.2, 1.2, 1][:ncols]})
    ax_fid, ax_d = axes[0], axes[1]
    pct = lambda r: r["remaining_pct"]
    ext = extractors(df)
    draw_curves(ax_fid, df, stats, pct, "fid", ("fid_low", "fid_high"), controls=False)
    inf = stats[stats["main"]].sort_values("sparsity")
    if inf["fid_inf"].notna().any():
        ax_fid.plot(inf["remaining_pct"], inf["fid_inf"], color=MEAN_COLOR, ls=":", lw=1.5, label="mean FID∞ (N → ∞)")
    for i, (seed, point) in enumerate(sorted((stops or {}).items())):
        if point is not None:
            ax_fid.scatter([point[0]], [point[1]], marker="X", s=70, color="black", zorder=5,
                           label="where a seed's fixed sequence stops" if i == 0 else "_nolegend_")
    sparsity_axis(ax_fid, df.loc[df["main"], "remaining_pct"], SHORT_X)
    ax_fid.set_ylabel(f"FID ({ext}; lower is better)", fontsize=8)
    ax_fid.set_title("FID of dense and tickets", fontsize=10)
    legend_below(ax_fid)

    _plot_delta(ax_d, stats, margin, deltas or {})
    ax_d.set_title("ΔFID ticket − dense (below the margin: non-inferior)", fontsize=10)
    legend_below(ax_d)
    if controls:
        _plot_controls(axes[2], df, stats, controls)
        legend_below(axes[2], ncol=1, below=-0.22)
    fig.tight_layout()
    return fig


def _plot_delta(ax, stats: pd.DataFrame, margin: Optional[float], deltas: dict) -> None:
    t = stats[(stats["kind"] == "ticket")].set_index("round")["remaining_pct"]
    ks = [k for k in sorted(deltas) if k in t.index]
    if not ks:
        ax.text(0.5, 0.5, "no pruned round", ha="center", va="center", transform=ax.transAxes)
        return
    x = [float(t[k]) for k in ks]
    est = [deltas[k].estimate for k in ks]
    lo = [deltas[k].low for k in ks]
    hi = [deltas[k].high for k in ks]
    n_seeds = max(len(deltas[k].values) for k in ks)
    for i in range(n_seeds):
        ys = [deltas[k].values[i] if i < len(deltas[k].values) else math.nan for k in ks]
        line, = ax.plot(x, ys, color="gray", lw=0.9, alpha=SEED_ALPHA, marker=".",
                        label=f"each of {n_seeds} seed(s)" if i == 0 else "_nolegend_")
        line.set_gid(f"delta seed {i}")
    ax.plot(x, est, color=MEAN_COLOR, lw=2.2, marker="o", label="mean ΔFID")
    ax.fill_between(x, lo, hi, color=MEAN_COLOR, alpha=0.15, label="95 % interval of the mean")
    ax.axhline(0.0, color="black", lw=0.8)
    if margin is not None:
        floor = min([0.0] + [v for v in lo if math.isfinite(v)])
        ax.axhspan(floor, margin, color="green", alpha=0.08, label=f"non-inferior: ΔFID < margin {margin:.2f}")
        ax.axhline(margin, color="green", lw=1.2, ls="--")
    sparsity_axis(ax, t.loc[ks], SHORT_X)
    ax.set_ylabel("ΔFID = FID(ticket) − FID(dense), same seed\n(> 0: the ticket is worse)", fontsize=8)


def _plot_controls(ax, df: pd.DataFrame, stats: pd.DataFrame, controls: list[str]) -> None:
    """At each control round: the ticket and each control, seeds as open markers, mean with interval."""
    rounds = sorted(set(df.loc[~df["main"], "round"]))
    kinds = ["ticket"] + controls
    width = 0.8 / len(kinds)
    for j, kind in enumerate(kinds):
        color = MEAN_COLOR if kind == "ticket" else CONTROL_COLORS.get(kind, "tab:purple")
        marker = "o" if kind == "ticket" else _marker(kind)
        for i, k in enumerate(rounds):
            pos = i + (j - (len(kinds) - 1) / 2) * width
            seeds = df[(df["kind"] == kind) & (df["round"] == k)]
            s = stats[(stats["kind"] == kind) & (stats["round"] == k)]
            ax.scatter([pos] * len(seeds), seeds["fid"], marker=marker, facecolors="none", edgecolors=color, s=25,
                       alpha=0.7, label="_nolegend_")
            if len(s):
                m, lo, hi = float(s["fid"].iloc[0]), float(s["fid_low"].iloc[0]), float(s["fid_high"].iloc[0])
                err = [[max(m - lo, 0) if math.isfinite(lo) else 0], [max(hi - m, 0) if math.isfinite(hi) else 0]]
                ax.errorbar([pos], [m], yerr=err, fmt=marker, color=color, ms=7, capsize=3,
                            label=("ticket" if kind == "ticket" else f"{kind} control") + " (mean, 95 % CI)"
                            if i == 0 else "_nolegend_")
    sp = stats[stats["kind"] == "ticket"].set_index("round")["sparsity"]
    ax.set_xticks(range(len(rounds)))
    ax.set_xticklabels([f"round {k}\n{100 * float(sp.get(k, math.nan)):.1f} % sp." for k in rounds], fontsize=8)
    ax.set_xlim(-0.6, len(rounds) - 0.4)
    ax.set_ylabel("FID (lower is better)", fontsize=8)
    ax.set_title("Ticket vs controls at the control rounds", fontsize=10)
    ax.grid(True, axis="y", alpha=0.3)


def plot_fid_vs_cost(df: pd.DataFrame, stats: pd.DataFrame):
    """FID vs MACs and vs storage, and KID vs remaining weights (KID: mean ± sd over seeds)."""
    scale, unit = macs_unit(df["macs"])
    fig, (ax_macs, ax_store, ax_kid) = plt.subplots(1, 3, figsize=(16, 4.8))
    draw_curves(ax_macs, df, stats, lambda r: r["macs"] / scale, "fid", ("fid_low", "fid_high"))
    draw_curves(ax_store, df, stats, lambda r: r["storage_bytes"] / 1024, "fid", ("fid_low", "fid_high"))
    draw_curves(ax_kid, df, stats, lambda r: r["remaining_pct"], "kid_mean", "kid_sd")
    ext = extractors(df)
    ax_macs.set_xlabel(f"multiply-accumulates per image forward ({unit}, kept weights only, log scale)", fontsize=8)
    ax_store.set_xlabel("compressed ticket size (KiB, log scale)", fontsize=8)
    ax_macs.set_title("FID vs compute", fontsize=10)
    ax_store.set_title("FID vs storage", fontsize=10)
    ax_kid.set_title("KID vs remaining weights (mean ± sd over seeds)", fontsize=10)
    for ax in (ax_macs, ax_store):
        log_axis_plain(ax)
        ax.set_ylabel(f"FID ({ext}; lower is better)", fontsize=8)
        ax.grid(True, which="both", alpha=0.3)
    sparsity_axis(ax_kid, df["remaining_pct"])
    ax_kid.set_ylabel(f"KID ({ext}; lower is better)", fontsize=8)
    for ax in (ax_macs, ax_store, ax_kid):
        legend_below(ax, ncol=1)
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
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
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


def layers_uniform(mask_report: dict[str, Any], tolerance: float = 0.005) -> bool:
    """Every layer pruned to the same sparsity (within `tolerance`, the rounding of a per-layer count):
    a per-layer bar chart would be identical bars."""
    values = [float(v["sparsity"]) for v in mask_report.get("layers", {}).values()]
    return bool(values) and max(values) - min(values) <= tolerance


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


def plot_sample_grids(panels: list[tuple[str, Path]], ncols: int, row_labels: Optional[list[str]] = None):
    """panels: (title, samples.png) in row-major order, `ncols` per row (None path: an empty cell)."""
    import matplotlib.image as mpimg

    nrows = max(1, math.ceil(len(panels) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.0 * ncols + 0.4, 2.35 * nrows + 0.5), squeeze=False,
                             layout="constrained")
    for ax in axes.flat:
        ax.axis("off")
    for ax, (title, path) in zip(axes.flat, panels):
        if path is None:
            continue
        img = mpimg.imread(path)
        ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(title, fontsize=7)
    for i, label in enumerate(row_labels or []):
        if i < nrows:
            axes[i, 0].text(-0.08, 0.5, label, transform=axes[i, 0].transAxes, rotation=90, ha="right",
                            va="center", fontsize=9)
    fig.suptitle("DDIM samples from the EMA model: one column per round, then the controls at each control round",
                 fontsize=10)
    return fig


def paired_steps(curve: dict[int, Any], level: float = 0.95) -> list[tuple[int, int, float, float, float]]:
    """Between consecutive convergence checks of one dense run: (step from, step to, mean per-item
    improvement loss(from) − loss(to), and the two-sided (2·level − 1) t interval whose upper end is the
    one-sided `level` bound the convergence check compares with its tolerance), paired item by item
    (the same held-out items, noise and timesteps at every check)."""
    import numpy as np
    from scipy import stats as st

    steps = sorted(curve)
    out = []
    for a, b in zip(steps, steps[1:]):
        d = np.asarray(curve[a], dtype=float) - np.asarray(curve[b], dtype=float)
        n = len(d)
        m = float(d.mean())
        se = float(d.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan
        q = float(st.t.ppf(level, n - 1)) if n > 1 else math.nan
        out.append((a, b, m, m - q * se, m + q * se))
    return out


def plot_convergence(conv, curves: Optional[dict] = None, level: float = 0.95) -> "plt.Figure":
    """The quantity the convergence verdict uses: per seed, the paired per-item improvement of the dense
    run's held-out loss between consecutive checks (relative to its final loss), with its interval, and
    the tolerance line the last span's upper bound must stay under. `curves`: seed -> {step: per-item losses}."""
    fig, ax = plt.subplots(figsize=(7.5, 4))
    if conv is None or not curves:
        ax.text(0.5, 0.5, "no held-out curve (eval_dense's paired.json)", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return fig
    n_seeds = len(conv.per_seed)
    width = 0.7 / max(n_seeds, 1)
    spans: list[str] = []
    for i, (seed, c) in enumerate(conv.per_seed):
        steps = paired_steps(curves[seed], level)
        final = c.final_loss
        for j, (a, b, m, lo, hi) in enumerate(steps):
            if f"{a}→{b}" not in spans:
                spans.append(f"{a}→{b}")
            pos = j + (i - (n_seeds - 1) / 2) * width
            ax.errorbar([pos], [100 * m / final], yerr=[[100 * (m - lo) / final], [100 * (hi - m) / final]], fmt="o",
                        capsize=3, color=plt.get_cmap("tab10")(i + 1),
                        label=f"seed {seed}: {c.status}" if j == 0 else "_nolegend_")
    tol = 100 * conv.per_seed[0][1].tolerance
    ax.axhline(tol, color="green", ls="--", lw=1.2, label=f"tolerance {tol:g} % of the final loss")
    ax.axhline(0.0, color="black", lw=0.8)
    ax.set_xticks(range(len(spans)))
    ax.set_xticklabels([f"steps {s}" for s in spans], fontsize=8)
    ax.set_ylabel("held-out loss improvement, paired per item\n(% of the final loss; > 0: still improving)", fontsize=8)
    bad = conv.n_seeds - conv.n_converged
    title = (f"Dense baseline converged in all {conv.n_seeds} seeds" if conv.converged else
             f"Dense baseline still improving in {bad} of {conv.n_seeds} seeds")
    ax.set_title(title + " (verdict: the last span's upper bound vs the tolerance)", fontsize=9)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
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
