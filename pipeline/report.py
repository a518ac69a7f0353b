"""The per-run report: `reports/` from the eval, prune, similarity and layer-rate artifacts.

Figures follow the LTH papers' conventions (FID against the percentage of prunable weights
remaining, log x axis); every FID names its feature extractor and sample count. `index.html` is
self-contained (images as base64 data URIs, inline CSS, no URL at all) so it opens offline.
"""
from __future__ import annotations

import base64
import html
import math
import re
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, NullFormatter, NullLocator  # noqa: E402

from . import artifacts as A
from .config import ConfigError, Params  # noqa: E402
from .io import load_json, save_figure, save_json, save_text  # noqa: E402

# Columns of reports/fid_vs_sparsity.csv (declared as a DVC plot, so keep them stable).
CSV_COLUMNS = ["schedule", "rewind", "seed", "round", "sparsity", "remaining_pct", "fid", "kid_mean",
               "macs", "storage_bytes"]
# eval/s{seed}/r{k}/metrics.json: the main run's layout; other metrics.json under eval/ are controls.
_MAIN_EVAL = re.compile(r"^s(\d+)/r(\d+)/metrics\.json$")


# --------------------------------------------------------------------------------------------
# inputs
# --------------------------------------------------------------------------------------------
def eval_path(root: Path, seed: int, k: int) -> Path:
    """The eval stage's folder, under `root` instead of artifacts/ (the layout is artifacts.py's)."""
    return Path(root) / A.eval_dir(seed, k).relative_to(A.ROOT)


def prune_path(root: Path, seed: int, k: int) -> Path:
    return Path(root) / A.prune_dir(seed, k).relative_to(A.ROOT)


def _require(path: Path, stage: str, seed: int, k: int) -> Path:
    if not path.exists():
        raise ConfigError(f"{path}: missing; it is made by stage '{stage}' (seed {seed}, round {k}); "
                          "run `dvc repro` first")
    return path


def round_ids(params: Params) -> list[int]:
    return [0] + [r.k for r in params.imp.rounds]


def _metrics_row(m: dict[str, Any], path: Path, main: bool, default_rewind: str) -> dict[str, Any]:
    missing = [k for k in ("seed", "round", "sparsity", "fid") if k not in m]
    if missing:
        raise ConfigError(f"{path}: not an eval metrics file (lacks {', '.join(missing)})")
    row = dict(m)
    row["rewind"] = m.get("rewind") or (default_rewind if main else "")
    row["remaining_pct"] = 100.0 * (1.0 - float(m["sparsity"]))
    row["main"] = main
    row["path"] = str(path)
    return row


def load_eval_table(params: Params, root: Path) -> pd.DataFrame:
    """One row per metrics.json: the main run's (required) plus any controls found under eval/.

    Stale s{seed}/r{k} folders of rounds or seeds no longer in params are ignored, so shortening
    the study does not leave old points in the report.
    """
    root = Path(root)
    rows, wanted = [], set()
    for seed in params.eval.seeds:
        for k in round_ids(params):
            path = _require(eval_path(root, seed, k) / "metrics.json", "eval", seed, k)
            wanted.add(path.resolve())
            rows.append(_metrics_row(load_json(path), path, True, params.rewind.mode))
    eval_root = root / "eval"
    for path in sorted(eval_root.rglob("metrics.json")):
        rel = path.relative_to(eval_root).as_posix()
        if path.resolve() in wanted or _MAIN_EVAL.match(rel):
            continue
        rows.append(_metrics_row(load_json(path), path, False, ""))
    df = pd.DataFrame(rows)
    for col in ("kid_mean", "kid_std", "macs", "storage_bytes", "params_kept", "heldout_loss"):
        if col not in df:
            df[col] = float("nan")
    for col in ("feature_extractor", "schedule"):
        if col not in df:
            df[col] = "?"
    if "num_samples" not in df:
        df["num_samples"] = 0
    return df


# --------------------------------------------------------------------------------------------
# numbers
# --------------------------------------------------------------------------------------------
def sparsest_within_tolerance(rows: pd.DataFrame, tolerance: float) -> Optional[pd.Series]:
    """The sparsest pruned round (round >= 1) whose FID is at most `tolerance` above dense (round 0).

    `rows`: one run's rounds with columns round, sparsity, fid. None when no round qualifies.
    """
    dense = rows.loc[rows["round"] == 0, "fid"]
    if dense.empty:
        raise ValueError("no dense (round 0) row to compare against")
    ok = rows[(rows["round"] > 0) & (rows["fid"] - float(dense.iloc[0]) <= tolerance)]
    if ok.empty:
        return None
    return ok.sort_values(["sparsity", "round"]).iloc[-1]


def main_run_means(df: pd.DataFrame) -> pd.DataFrame:
    """The main run per round, averaged over eval seeds (one seed: that seed's numbers)."""
    main = df[df["main"]]
    cols = ["sparsity", "fid", "kid_mean", "macs", "storage_bytes", "params_kept", "heldout_loss"]
    return main.groupby("round", as_index=False)[cols].mean().sort_values("round")


def summary_metrics(params: Params, df: pd.DataFrame) -> dict[str, Any]:
    means = main_run_means(df)
    dense, final = means.iloc[0], means.iloc[-1]
    best = sparsest_within_tolerance(means, params.report.fid_tolerance)
    main = df[df["main"]]
    out: dict[str, Any] = {
        "schedule": params.sparsity.schedule,
        "rewind": params.rewind.mode,
        "feature_extractor": str(main["feature_extractor"].iloc[0]),
        "num_samples": int(main["num_samples"].iloc[0]),
        "eval_seeds": list(params.eval.seeds),
        "dense_fid": float(dense["fid"]),
        "final_round": int(final["round"]),
        "final_fid": float(final["fid"]),
        "final_sparsity": float(final["sparsity"]),
        "final_macs": float(final["macs"]),
        "fid_tolerance": params.report.fid_tolerance,
        "sparsest_within_tolerance": None,
    }
    if best is not None:
        out["sparsest_within_tolerance"] = {
            "round": int(best["round"]), "sparsity": float(best["sparsity"]), "fid": float(best["fid"]),
            "delta_fid": float(best["fid"] - dense["fid"])}
    return out


def csv_table(params: Params, df: pd.DataFrame) -> pd.DataFrame:
    """Tidy rows for `dvc plots`: every line of fid_vs_sparsity.png, dense first."""
    out = df.copy()
    dense = out["main"] & (out["round"] == 0)
    out.loc[dense, "schedule"] = params.sparsity.schedule  # the dense run starts the main line
    out = out.sort_values(["main", "schedule", "rewind", "seed", "sparsity"], ascending=[False, True, True, True, True])
    out["remaining_pct"] = out["remaining_pct"].round(6)
    return out[CSV_COLUMNS].reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# figures
# --------------------------------------------------------------------------------------------
def _lines(df: pd.DataFrame):
    """(label, rows) per (schedule, rewind, seed), each starting at that seed's dense point."""
    dense = df[df["main"] & (df["round"] == 0)].set_index("seed")
    pruned = df[~(df["main"] & (df["round"] == 0))]
    for (schedule, rewind, seed), rows in pruned.groupby(["schedule", "rewind", "seed"], sort=True):
        if seed in dense.index:
            rows = pd.concat([dense.loc[[seed]].reset_index(), rows], ignore_index=True)
        rows = rows.sort_values("sparsity")
        first = rows.iloc[-1]
        label = f"{schedule}" + (f", rewind={rewind}" if rewind else "") + f", seed {seed} " \
                f"({first['feature_extractor']}, N={int(first['num_samples'])})"
        yield label, rows


def _dense_rows(df: pd.DataFrame) -> pd.DataFrame:
    return df[df["main"] & (df["round"] == 0)].sort_values("seed")


def _sparsity_axis(ax, remaining: pd.Series) -> None:
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


def plot_fid_vs_sparsity(df: pd.DataFrame, tolerance: float):
    fig, (ax_fid, ax_kid) = plt.subplots(1, 2, figsize=(13, 5))
    for label, rows in _lines(df):
        ax_fid.plot(rows["remaining_pct"], rows["fid"], marker="o", label=label)
        ax_kid.errorbar(rows["remaining_pct"], rows["kid_mean"], yerr=rows.get("kid_std"), marker="o",
                        capsize=3, label=label)
    for _, d in _dense_rows(df).iterrows():
        ax_fid.axhline(d["fid"], ls="--", color="gray", lw=1, label=f"dense seed {d['seed']}: FID {d['fid']:.2f}")
        ax_fid.axhspan(d["fid"], d["fid"] + tolerance, color="green", alpha=0.08,
                       label=f"within ΔFID ≤ {tolerance:g} of dense")
        ax_kid.axhline(d["kid_mean"], ls="--", color="gray", lw=1, label=f"dense seed {d['seed']}")
    extractor = ", ".join(sorted(df["feature_extractor"].astype(str).unique()))
    for ax, what in ((ax_fid, "FID"), (ax_kid, "KID (mean ± std over subsets)")):
        _sparsity_axis(ax, df["remaining_pct"])
        ax.set_ylabel(f"{what} ({extractor} features; lower is better)")
        ax.legend(fontsize=7)
    ax_fid.set_title("FID vs remaining weights (IMP rounds)")
    ax_kid.set_title("KID vs remaining weights")
    fig.tight_layout()
    return fig


def log_axis_plain(ax) -> None:
    """Log x with plain numbers (1, 2, 5, 10, ...) rather than 2x10^0 labels."""
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())


def _macs_unit(macs: pd.Series) -> tuple[float, str]:
    return (1e9, "GMACs") if float(macs.max()) >= 1e9 else (1e6, "MMACs")


def plot_fid_vs_cost(df: pd.DataFrame):
    scale, unit = _macs_unit(df["macs"])
    fig, (ax_macs, ax_store) = plt.subplots(1, 2, figsize=(13, 5))
    for label, rows in _lines(df):
        ax_macs.plot(rows["macs"] / scale, rows["fid"], marker="o", label=label)
        ax_store.plot(rows["storage_bytes"] / 1024, rows["fid"], marker="o", label=label)
    for _, d in _dense_rows(df).iterrows():
        ax_macs.scatter([d["macs"] / scale], [d["fid"]], marker="*", s=160, color="black", zorder=5,
                        label=f"dense seed {d['seed']}")
        ax_store.scatter([d["storage_bytes"] / 1024], [d["fid"]], marker="*", s=160, color="black", zorder=5,
                         label=f"dense seed {d['seed']}")
    extractor = ", ".join(sorted(df["feature_extractor"].astype(str).unique()))
    ax_macs.set_xlabel(f"multiply-accumulates per image forward ({unit}, kept weights only, log scale)")
    ax_store.set_xlabel("compressed ticket size (KiB, log scale)")
    ax_macs.set_title("FID vs compute")
    ax_store.set_title("FID vs storage")
    for ax in (ax_macs, ax_store):
        log_axis_plain(ax)
        ax.set_ylabel(f"FID ({extractor} features)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def _block_colors(blocks: list[str]) -> dict[str, Any]:
    order = list(dict.fromkeys(blocks))
    cmap = plt.get_cmap("tab10" if len(order) <= 10 else "tab20")
    return {b: cmap(i % cmap.N) for i, b in enumerate(order)}


def _bars_by_block(ax, names: list[str], values: list[float], legend: bool = True) -> None:
    from .similarity import block_of  # lazy: the similarity module owns the block naming

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
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.6 * ncols, 4.0 * nrows), squeeze=False, layout="constrained")
    for ax in axes.flat:
        ax.axis("off")
    for ax, (title, path) in zip(axes.flat, panels):
        img = mpimg.imread(path)
        ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(title, fontsize=9)
    fig.suptitle("DDIM samples from the EMA model: dense vs the sparsest tickets")
    return fig


# --------------------------------------------------------------------------------------------
# text
# --------------------------------------------------------------------------------------------
@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]


@dataclass
class Section:
    title: str
    paragraphs: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    figures: list[tuple[str, Path]] = field(default_factory=list)


def _fmt(v: Any, spec: str) -> str:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return "–"
    return "–" if math.isnan(f) else format(f, spec)


def round_table(rows: pd.DataFrame, macs_scale: float, macs_unit: str) -> Table:
    header = ["seed", "round", "schedule", "sparsity (%)", "params kept", f"MACs ({macs_unit})",
              "storage (KiB)", "FID", "KID", "heldout loss"]
    body = []
    for _, r in rows.sort_values(["seed", "round"]).iterrows():
        kid = _fmt(r["kid_mean"], ".4f") + (f" ± {_fmt(r['kid_std'], '.4f')}" if "kid_std" in r and pd.notna(r["kid_std"]) else "")
        body.append([str(r["seed"]), str(r["round"]), "dense" if r["main"] and r["round"] == 0 else str(r["schedule"])
                     + (f" ({r['rewind']})" if r["rewind"] else ""),
                     _fmt(100 * r["sparsity"], ".2f"), _fmt(r["params_kept"], ",.0f"),
                     _fmt(r["macs"] / macs_scale, ".3f"), _fmt(r["storage_bytes"] / 1024, ".1f"),
                     _fmt(r["fid"], ".2f"), kid, _fmt(r["heldout_loss"], ".5f")])
    return Table(header, body)


def _similarity_finding(summary: dict[str, Any]) -> str:
    for key in ("finding", "conclusion", "summary", "text", "message"):
        if isinstance(summary.get(key), str):
            return summary[key]
    items = []
    for k, v in summary.items():
        if isinstance(v, dict):
            items += [(f"{k}.{k2}", v2) for k2, v2 in v.items() if isinstance(v2, (int, float, str, bool))]
        elif isinstance(v, (int, float, str, bool)):
            items.append((k, v))
    return "; ".join(f"{k}: {v:.3g}" if isinstance(v, float) else f"{k}: {v}" for k, v in items[:16])


def render_markdown(title: str, sections: list[Section]) -> str:
    out = [f"# {title}", ""]
    for s in sections:
        out += [f"## {s.title}", ""]
        for p in s.paragraphs:
            out += [p, ""]
        for t in s.tables:
            out.append("| " + " | ".join(t.header) + " |")
            out.append("|" + "---|" * len(t.header))
            out += ["| " + " | ".join(row) + " |" for row in t.rows]
            out.append("")
        for caption, path in s.figures:
            out += [f"![{caption}]({path.name})", ""]
    return "\n".join(out)


_CSS = """body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:0.9em}th,td{border:1px solid #bbb;padding:3px 8px;
text-align:right}th{background:#eee}img{max-width:100%;border:1px solid #ddd;margin:0.5em 0}
figcaption{font-size:0.85em;color:#555}"""


def _no_url(text: str) -> str:
    """Escape text for HTML; break any 'http' so the page never names (or loads) a URL."""
    return re.sub(r"(?i)(h)(t)(tp)", lambda m: f"{m[1]}&#{ord(m[2])};{m[3]}", html.escape(text))


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_data_uri(png: bytes) -> str:
    """A base64 data URI of the PNG that contains no 'http' in any case.

    Base64 text can spell 'http' by chance (about once per MB, ignoring case); a padding tEXt chunk
    after the header shifts the 3-byte alignment of everything after it, which rewrites the text.
    """
    head, tail = png[:33], png[33:]  # 8-byte signature + IHDR chunk
    for pad in range(64):
        candidate = png if pad == 0 else head + _png_chunk(b"tEXt", b"pad\x00" + b"x" * pad) + tail
        encoded = base64.b64encode(candidate).decode("ascii")
        if "http" not in encoded.lower():
            return "data:image/png;base64," + encoded
    raise RuntimeError("could not encode the PNG without an 'http' substring")


def render_html(title: str, sections: list[Section]) -> str:
    out = ["<!DOCTYPE html>", "<html lang=\"en\"><head><meta charset=\"utf-8\">",
           f"<title>{_no_url(title)}</title><style>{_CSS}</style></head><body>", f"<h1>{_no_url(title)}</h1>"]
    for s in sections:
        out.append(f"<h2>{_no_url(s.title)}</h2>")
        out += [f"<p>{_no_url(p)}</p>" for p in s.paragraphs]
        for t in s.tables:
            out.append("<table><tr>" + "".join(f"<th>{_no_url(h)}</th>" for h in t.header) + "</tr>")
            out += ["<tr>" + "".join(f"<td>{_no_url(c)}</td>" for c in row) + "</tr>" for row in t.rows]
            out.append("</table>")
        for caption, path in s.figures:
            uri = png_data_uri(Path(path).read_bytes())
            out.append(f"<figure><img alt=\"{_no_url(caption)}\" src=\"{uri}\"><figcaption>{_no_url(caption)}"
                       "</figcaption></figure>")
    out.append("</body></html>")
    page = "\n".join(out)
    if "http" in page.lower():  # a bug in the escaping above, never the user's fault
        raise RuntimeError("index.html would contain 'http'")
    return page


# --------------------------------------------------------------------------------------------
# the report
# --------------------------------------------------------------------------------------------
def _sample_panels(params: Params, df: pd.DataFrame, root: Path, n_sparsest: int = 3) -> tuple[list, int]:
    rounds = round_ids(params)
    shown = [0] + rounds[1:][-n_sparsest:]
    panels = []
    for seed in params.eval.seeds:
        for k in shown:
            r = df[df["main"] & (df["seed"] == seed) & (df["round"] == k)].iloc[0]
            path = _require(eval_path(root, seed, k) / "samples.png", "eval", seed, k)
            what = "dense" if k == 0 else f"round {k}: {100 * r['sparsity']:.1f}% sparse"
            panels.append((f"seed {seed}, {what}\nFID {r['fid']:.2f} ({r['feature_extractor']}, "
                           f"N={int(r['num_samples'])})", path))
    return panels, len(shown)


def _within_tolerance_sentence(rows: pd.DataFrame, tolerance: float, who: str) -> str:
    dense = float(rows.loc[rows["round"] == 0, "fid"].iloc[0])
    best = sparsest_within_tolerance(rows, tolerance)
    if best is None:
        pruned = rows[rows["round"] > 0]
        if pruned.empty:
            return f"{who}: no pruned rounds yet (dense FID {dense:.2f})."
        closest = pruned.sort_values("fid").iloc[0]
        return (f"{who}: no ticket stays within ΔFID ≤ {tolerance:g} of dense (dense FID {dense:.2f}); the best "
                f"is round {int(closest['round'])} at {100 * closest['sparsity']:.1f}% sparsity, FID "
                f"{closest['fid']:.2f} (ΔFID {closest['fid'] - dense:+.2f}).")
    return (f"{who}: the sparsest ticket within ΔFID ≤ {tolerance:g} of dense is round {int(best['round'])} at "
            f"{100 * best['sparsity']:.2f}% sparsity, FID {best['fid']:.2f} vs dense {dense:.2f} "
            f"(ΔFID {best['fid'] - dense:+.2f}).")


def build_report(params: Params, out_dir: Path = Path("reports"), artifacts_root: Path = Path("artifacts")) -> list[Path]:
    """Write every report file under `out_dir`; return their paths."""
    out_dir, root = Path(out_dir), Path(artifacts_root)
    df = load_eval_table(params, root)
    main = df[df["main"]]
    tol = params.report.fid_tolerance
    rounds = round_ids(params)
    masks = {(s, k): load_json(_require(prune_path(root, s, k) / "mask.json", "prune", s, k))
             for s in params.imp.seeds for k in rounds[1:]}
    written: list[Path] = []
    notes: list[str] = []
    figures: dict[str, tuple[str, Path]] = {}

    def figure(name: str, caption: str, fig) -> None:
        path = save_figure(fig, out_dir / name, dpi=110)
        written.append(path)
        figures[name] = (caption, path)

    extractor = ", ".join(sorted(main["feature_extractor"].astype(str).unique()))
    n_samples = ", ".join(str(int(n)) for n in sorted(main["num_samples"].unique()))
    sampler = ", ".join(sorted(main["sampler"].astype(str).unique())) if "sampler" in main else "?"

    figure("fid_vs_sparsity.png", "FID and KID vs prunable weights remaining", plot_fid_vs_sparsity(df, tol))
    figure("fid_vs_cost.png", "FID vs MACs and vs compressed storage", plot_fid_vs_cost(df))
    if len(rounds) > 1:
        seed, k = params.eval.seeds[0], rounds[-1]
        figure("layer_sparsity.png", f"Per-layer sparsity of the seed {seed} round {k} ticket",
               plot_layer_sparsity(masks[(seed, k)]))
    else:
        notes.append("layer_sparsity.png skipped: imp.rounds is empty, so there is no pruned ticket.")

    sim_csv, sim_summary = root / "similarity" / "similarity.csv", root / "similarity" / "summary.json"
    finding = None
    if sim_csv.exists():
        from .similarity import plot_depth, plot_heatmap  # lazy: owned by the similarity module

        sim = pd.read_csv(sim_csv)
        metric = params.similarity.metric
        seed = params.imp.seeds[0]
        labels = {k: f"round {k} ({masks[(seed, k)]['sparsity']:.0%} sparse)" for k in rounds[1:]}
        sim_title = f"seeds {list(params.imp.seeds)[:2]}, {params.sparsity.schedule} schedule, rewind={params.rewind.mode}"
        figure("similarity_heatmap.png", f"Ticket agreement per block and round ({metric})",
               plot_heatmap(sim, metric=metric, title=sim_title, round_labels=labels))
        figure("similarity_depth.png", f"Ticket agreement vs layer depth ({metric})",
               plot_depth(sim, metric=metric, title=sim_title, round_labels=labels))
    else:
        notes.append(f"similarity figures skipped: {sim_csv} not found (made by stage 'similarity').")
    if sim_summary.exists():
        finding = _similarity_finding(load_json(sim_summary))
    else:
        notes.append(f"similarity finding skipped: {sim_summary} not found (made by stage 'similarity').")

    rates_path = root / "layer_rates" / "rates.json"
    if rates_path.exists():
        figure("layer_rates.png", "Per-layer ticket agreement and layerwise pruning weights",
               plot_layer_rates(load_json(rates_path)))
    else:
        notes.append(f"layer_rates.png skipped: {rates_path} not found (made by stage 'layer_rates').")

    panels, ncols = _sample_panels(params, df, root)
    figure("samples.png", "Sample grids: dense and the sparsest rounds", plot_sample_grids(panels, ncols))

    # tables and text
    scale, unit = _macs_unit(df["macs"])
    metrics = summary_metrics(params, df)
    title = f"LTH diffusion report: {params.sparsity.schedule} schedule, rewind={params.rewind.mode}"
    setup = Section("Setup", [
        f"Dataset {params.data.dataset} at {params.data.image_size}x{params.data.image_size}x{params.data.channels}; "
        f"U-Net dim {params.model.dim}, dim_mults {list(params.model.dim_mults)}; {len(rounds) - 1} IMP rounds "
        f"removing {params.sparsity.rate:.0%} of surviving prunable weights each; rewind mode {params.rewind.mode}; "
        f"IMP seeds {list(params.imp.seeds)}, evaluated seeds {list(params.eval.seeds)}.",
        f"FID and KID use the {extractor} feature extractor on {n_samples} generated samples ({sampler} sampler); "
        "FID values from different extractors or sample counts are not comparable."])
    results = Section("Results per round", [
        f"Sparsity is the fraction of prunable weights removed; MACs count one forward pass of one image through "
        f"conv/linear layers with kept weights only ({unit}); storage is the compressed ticket file."],
        [round_table(main, scale, unit)])
    best = Section(f"Sparsest ticket within ΔFID ≤ {tol:g} of dense (report.fid_tolerance)")
    for seed in params.eval.seeds:
        best.paragraphs.append(_within_tolerance_sentence(main[main["seed"] == seed], tol, f"Seed {seed}"))
    if len(params.eval.seeds) > 1:
        best.paragraphs.append(_within_tolerance_sentence(main_run_means(df), tol, "Mean over eval seeds"))
    sections = [setup, results, best]
    controls = df[~df["main"]]
    if not controls.empty:
        sections.append(Section("Controls", ["Runs found under artifacts/eval outside the main s{seed}/r{k} layout."],
                                [round_table(controls, scale, unit)]))
    if masks:
        sections.append(Section("Ticket sparsity per seed (from mask.json)", [], [Table(
            ["round"] + [f"seed {s} sparsity (%)" for s in params.imp.seeds],
            [[str(k)] + [_fmt(100 * masks[(s, k)]["sparsity"], ".2f") for s in params.imp.seeds] for k in rounds[1:]])]))
    sections.append(Section("Ticket similarity", [finding] if finding else ["No similarity summary available."]))
    sections.append(Section("Figures", figures=list(figures.values())))
    if notes:
        sections.append(Section("Notes", notes))

    frame = csv_table(params, df)
    csv_path = out_dir / "fid_vs_sparsity.csv"
    written.append(save_text(frame.to_csv(index=False), csv_path))
    written.append(save_json(metrics, out_dir / "metrics.json"))
    written.append(save_text(render_markdown(title, sections), out_dir / "summary.md"))
    written.append(save_text(render_html(title, sections), out_dir / "index.html"))
    return written


def run_report(params: Params) -> None:
    for path in build_report(params):
        print(f"report: wrote {path}")
