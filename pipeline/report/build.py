"""`reports/` from the eval, prune, similarity and layer-rate artifacts: findings first, then setup,
tables, figures. Byte-stable: no timestamps, no host facts, sorted inputs."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Optional

import pandas as pd

from pipeline.core.config import Params
from pipeline.core.io import load_json, save_figure, save_json, save_text
from pipeline.report import figures as F
from pipeline.report import findings as FD
from pipeline.report import frontier as FR
from pipeline.report import text
from pipeline.core import paths
from pipeline.report.inputs import heldout_by_t_table, load_eval_table, require, round_ids
from pipeline.report.render import Section, Table, render_html, render_markdown
from pipeline.report.tables import csv_table, mask_table, mean_table, round_table, seed_stats, summary_metrics


def _sample_panels(params: Params, df: pd.DataFrame, root: Path, fr) -> tuple[list, int]:
    """One row per seed: dense, its sparsest non-inferior ticket, the last round, and the controls of
    the last control round (six rounds of panels would not read)."""
    rounds = round_ids(params)
    panels, ncols = [], 0
    for seed in params.imp.seeds:
        best = fr.seeds.seed(seed).round_or_dense if fr is not None else 0
        shown = [("dense", 0, "dense")]
        if 0 < best < rounds[-1]:
            shown.append(("ticket", best, "sparsest non-inferior"))
        shown.append(("ticket", rounds[-1], "last round" + (" (sparsest non-inferior)" if best == rounds[-1] else "")))
        ctrl = df[(df["seed"] == seed) & ~df["main"]]
        if len(ctrl):
            k = int(ctrl["round"].max())
            shown += [(str(kind), k, f"{kind} control") for kind in sorted(ctrl.loc[ctrl["round"] == k, "kind"])]
        for kind, k, what in shown:
            r = df[(df["kind"] == kind) & (df["seed"] == seed) & (df["round"] == k)].iloc[0]
            folder = paths.eval_dir(seed, k, root) if r["main"] else paths.control_eval_dir(kind, seed, k, root)
            path = require(folder / "samples.png", "eval" if r["main"] else "eval_control", seed, k)
            sparse = "" if k == 0 else f", round {k}: {100 * r['sparsity']:.1f}%"
            panels.append((f"seed {seed}: {what}{sparse}\nFID {r['fid']:.2f} [{r['fid_ci_low']:.2f}, {r['fid_ci_high']:.2f}]",
                           path))
        ncols = max(ncols, len(shown))
    return panels, ncols


def _joined(values) -> str:
    return ", ".join(sorted({str(v) for v in values}))


def _setup(params: Params, df: pd.DataFrame) -> Section:
    main = df[df["main"]]
    rounds = round_ids(params)
    names = _joined(main["feature_extractor"])
    hashes = _joined(h if h != "?" else "not recorded" for h in main["extractor_sha256"])
    n_samples = ", ".join(str(int(n)) for n in sorted(main["num_samples"].unique()))
    first = main.iloc[0]
    boot = (f" Each FID's interval is the interval for FID at N = {int(first['num_samples'])} samples: "
            f"{first['fid_ci_method']}." if isinstance(first.get("fid_ci_method"), str) else "")
    controls = sorted(set(df.loc[~df["main"], "kind"]))
    return Section("Setup", [
        f"Dataset {params.data.dataset} at {params.data.image_size}x{params.data.image_size}x{params.data.channels}; "
        f"U-Net dim {params.model.dim}, dim_mults {list(params.model.dim_mults)}; {len(rounds) - 1} IMP rounds "
        f"removing {params.sparsity.rate:.0%} of surviving prunable weights each ({params.sparsity.schedule} schedule); "
        f"rewind mode {params.rewind.mode}; IMP seeds {list(params.imp.seeds)}, evaluated seeds "
        f"{list(params.imp.seeds)}; controls: {', '.join(controls) if controls else 'none found'}.",
        f"FID and KID use the {names} feature extractor (weights sha256 {hashes}) on {n_samples} generated "
        f"samples ({_joined(main['sampler'])} sampler); FID values from different extractors or sample counts "
        f"are not comparable; FID∞ is the N → ∞ extrapolation (Chong & Forsyth 2020).{boot}"])


def _findings_section(rows: list[dict[str, Any]], params: Params, fr) -> Section:
    sentence = FD.beyond_magnitude_sentence(rows)
    conv = fr.converged if fr is not None else None
    after = ([sentence] if sentence else []) + ([text.seeds_convergence_sentence(conv)] if conv is not None else []) + [
        "Verdicts are computed from the interval, never typed: "
        f"ticket vs dense is a fixed sequence of non-inferiority tests with margin report.margin = "
        f"{params.report.margin:g} of the dense FID (set before the run); the other claims are supported when "
        "the interval excludes 0 on the predicted side, contradicted when it excludes 0 on the other, and "
        "inconclusive at this scale otherwise. A ticket verdict against a dense baseline that has not converged "
        "is provisional and says so. Every paired interval over seeds is between-seed variance plus the "
        "shared-noise term (all runs share the starting noise and the held-out items), Student-t with "
        "Satterthwaite's df; the exact sign-flip p beside it needs no normality, but with n seeds it can never "
        f"go below 2/2ⁿ ({2 / 2 ** len(params.imp.seeds):.2g} here). Population: {params.population()}.",
        f"The layerwise claim (sparser or cheaper tickets at non-inferior FID) is judged by `lth-diffusion report compare` "
        f"on the frontier of each run: {text.LAYERWISE_FRONTIER_RULE}."]
    return Section("Findings", [], [FD.findings_table(rows)], after=after)


def _similarity_figures(params: Params, sim_csv: Path, masks: dict, figure, notes: list[str]) -> None:
    """Agreement per block and round, and vs depth, from the similarity table (a note when it is missing)."""
    rounds = round_ids(params)
    if sim_csv.exists():
        from pipeline.similarity.plots import plot_depth, plot_heatmap

        sim = pd.read_csv(sim_csv)
        metric = params.similarity.metric
        seed = params.imp.seeds[0]
        labels = {k: f"round {k} ({masks[(seed, k)]['sparsity']:.0%} sparse)" for k in rounds[1:]}
        n = len(params.imp.seeds)
        sim_title = (f"mean over the {n * (n - 1) // 2} pairs of seeds {list(params.imp.seeds)}, "
                     f"{params.sparsity.schedule} schedule, rewind={params.rewind.mode}")
        figure("similarity_heatmap.png", f"Ticket agreement per block and round ({metric})",
               plot_heatmap(sim, metric=metric, title=sim_title, round_labels=labels))
        figure("similarity_depth.png", f"Ticket agreement vs layer depth ({metric})",
               plot_depth(sim, metric=metric, title=sim_title, round_labels=labels))
    else:
        notes.append(f"similarity figures skipped: {sim_csv} not found (made by stage 'similarity').")


def _frontier_section(fr) -> Section:
    """The sparsest non-inferior ticket over seeds and per seed, and the decision across margins."""
    best = Section("Sparsest non-inferior ticket (fixed sequence of non-inferiority tests)")
    if fr is None:
        best.paragraphs.append("No IMP round: nothing to test.")
        return best
    best.paragraphs += [f"Over seeds (mean ΔFID): {text.frontier_sentence(fr.over_seeds)}.",
                        f"Per seed: {text.seeds_frontier_sentence(fr.seeds)}."]
    best.paragraphs += [f"Seed {seed}: {text.frontier_sentence(f)}." for seed, f in fr.seeds.per_seed]
    best.paragraphs.append("The same decision across margins (report.margins, fractions of the dense FID), "
                           "so a reader sees how much hangs on the margin:")
    cols = ["margin_fraction", "margin", "round", "prunable_sparsity", "global_sparsity", "status", "stopped_at"]
    cols += [c for c in ("seeds_censored", "seeds_sparsity_min", "seeds_sparsity_max") if c in fr.table]
    pct = {"prunable_sparsity", "global_sparsity", "seeds_sparsity_min", "seeds_sparsity_max"}
    body = [[("–" if v is None or (isinstance(v, float) and math.isnan(v)) else
              f"{100 * v:.2f} %" if c in pct else f"{v:g}" if isinstance(v, float) else str(v))
             for c, v in zip(cols, row)] for row in fr.table[cols].itertuples(index=False)]
    best.tables.append(Table(cols, body))
    return best


def build_report(params: Params, out_dir: Path = Path("reports"), artifacts_root: Path = paths.ROOT) -> list[Path]:
    """Write every report file under `out_dir`; return their paths."""
    out_dir, root = Path(out_dir), Path(artifacts_root)
    df = load_eval_table(params, root)
    runs = FR.load_paired(params, df, root)
    stats = seed_stats(df, runs, params.report.level)
    fr = FR.frontier(params, df, runs)
    rounds = round_ids(params)
    masks = {(s, k): load_json(require(paths.prune_dir(s, k, root) / "mask.json", "prune", s, k))
             for s in params.imp.seeds for k in rounds[1:]}
    written: list[Path] = []
    notes: list[str] = []
    figures: dict[str, tuple[str, Path]] = {}

    def figure(name: str, caption: str, fig) -> None:
        path = save_figure(fig, out_dir / name, dpi=110)
        written.append(path)
        figures[name] = (caption, path)

    sim_csv, sim_summary_path = paths.similarity_dir(root) / "similarity.csv", paths.similarity_dir(root) / "summary.json"
    sim_summary: Optional[dict] = load_json(sim_summary_path) if sim_summary_path.exists() else None
    findings = FD.collect(params, df, runs, fr, sim_summary, params.similarity.metric)

    stops = {}
    if fr is not None:
        for seed, f in fr.seeds.per_seed:
            row = df[(df["kind"] == "ticket") & (df["seed"] == seed) & (df["round"] == (f.stopped_at or -1))]
            stops[seed] = (float(row["remaining_pct"].iloc[0]), float(row["fid"].iloc[0])) if len(row) else None
    figure("fid_vs_sparsity.png", "FID and KID vs prunable weights remaining: each seed (thin), the mean over "
           "seeds with its 95 % interval (band), the controls (markers), the non-inferiority margin (green) and "
           "where each seed's fixed sequence of tests stops (X; none: censored at the last round)",
           F.plot_fid_vs_sparsity(df, stats, fr.over_seeds.margin if fr is not None else None, stops))
    figure("dense_convergence.png", "Dense baseline: held-out loss of the EMA weights at the convergence checks",
           F.plot_convergence(fr.converged if fr is not None else None))
    figure("fid_vs_cost.png", "FID vs MACs and vs compressed storage (seeds, mean, controls)", F.plot_fid_vs_cost(df, stats))
    by_t = heldout_by_t_table(df)
    figure("heldout_by_t.png", "Held-out denoising loss relative to dense per timestep bucket, mean over seeds",
           F.plot_heldout_by_t(by_t))
    if by_t.empty:
        notes.append("heldout_by_t: no metrics file has heldout_loss_by_t / heldout_t_edges.")
    if len(rounds) > 1:
        seed, k = params.imp.seeds[0], rounds[-1]
        figure("layer_sparsity.png", f"Per-layer sparsity of the seed {seed} round {k} ticket",
               F.plot_layer_sparsity(masks[(seed, k)]))
    else:
        notes.append("layer_sparsity.png skipped: imp.rounds is empty, so there is no pruned ticket.")

    _similarity_figures(params, sim_csv, masks, figure, notes)
    sim_rows = [r for r in findings if r["claim"] in FD.SIM_CLAIMS.values() and r["verdict"] != FD.NOT_MEASURED]
    from pipeline.similarity.plots import plot_claims

    figure("similarity_claims.png", "Similarity claims: effect and 95 % interval",
           plot_claims(sim_summary) if sim_rows else F.plot_claims_forest(sim_rows))
    if sim_summary is None:
        notes.append(f"similarity findings skipped: {sim_summary_path} not found (made by stage 'similarity').")

    rates_path = paths.layer_rates_path(root)
    if rates_path.exists():
        figure("layer_rates.png", "Per-layer ticket agreement and layerwise pruning weights",
               F.plot_layer_rates(load_json(rates_path)))
    else:
        notes.append(f"layer_rates.png skipped: {rates_path} not found (made by stage 'layer_rates').")

    panels, ncols = _sample_panels(params, df, root, fr)
    figure("samples.png", "Sample grids: dense, the sparsest non-inferior ticket, the last round and the controls",
           F.plot_sample_grids(panels, ncols))

    scale, unit = F.macs_unit(df["macs"])
    title = f"LTH diffusion report: {params.sparsity.schedule} schedule, rewind={params.rewind.mode}"
    results = Section("Mean over seeds", [
        "Mean ± sd over the evaluated seeds; the FID interval is the interval of the mean over seeds "
        "(between-seed variance plus the shared-noise term from the FID split errors on the shared samples, "
        "Student-t). Sparsity is the fraction of prunable weights removed, beside it the fraction of all "
        f"parameters; MACs count one forward pass of one image with kept weights only ({unit})."],
        [mean_table(stats, scale, unit)])
    per_seed = Section("Results per seed and round", [
        "Each FID with its interval for FID at N samples (the generated samples' sampling error) and FID∞ "
        "beside it; the extractor "
        "column names the feature extractor and the first 12 hex of its weights' sha256."],
        [round_table(df, scale, unit)])
    best = _frontier_section(fr)
    sections = [_findings_section(findings, params, fr), _setup(params, df), results, per_seed, best]
    if masks:
        sections.append(Section("Ticket sparsity per seed (from mask.json)", [], [mask_table(params, masks)]))
    sim_text = sim_summary.get("finding") if isinstance(sim_summary, dict) else None
    sections.append(Section("Ticket similarity", [sim_text] if isinstance(sim_text, str) else
                            ["No similarity summary available."]))
    sections.append(Section("Figures", figures=list(figures.values())))
    if notes:
        sections.append(Section("Notes", notes))

    written.append(save_text(csv_table(params, df).to_csv(index=False), out_dir / "fid_vs_sparsity.csv"))
    written.append(save_text(by_t.to_csv(index=False), out_dir / "heldout_by_t.csv"))
    written.append(save_json(summary_metrics(params, df, FD.json_ready(findings), FR.json_frontier(fr)),
                             out_dir / "metrics.json"))
    written.append(save_text(render_markdown(title, sections), out_dir / "summary.md"))
    written.append(save_text(render_html(title, sections), out_dir / "index.html"))
    return written


__all__ = ["build_report"]
