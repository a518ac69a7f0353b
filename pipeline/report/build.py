"""`reports/` from the eval, prune, similarity and layer-rate artifacts: findings first, then setup,
tables, figures. Byte-stable: no timestamps, no host facts, sorted inputs."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import pandas as pd

from pipeline.core.config import Params
from pipeline.core.io import load_json, save_figure, save_json, save_text
from pipeline.report import figures as F
from pipeline.report import findings as FD
from pipeline.report.inputs import eval_path, extractor_label, heldout_by_t_table, load_eval_table, prune_path, require, round_ids
from pipeline.report.render import Section, render_html, render_markdown
from pipeline.report.tables import (csv_table, main_run_means, mask_table, mean_table, round_table, seed_stats,
                     sparsest_within_tolerance, summary_metrics)
from pipeline.report.verdicts import LAYERWISE_RULE


def _sample_panels(params: Params, df: pd.DataFrame, root: Path, n_sparsest: int = 3) -> tuple[list, int]:
    rounds = round_ids(params)
    shown = [0] + rounds[1:][-n_sparsest:]
    panels = []
    for seed in params.imp.seeds:
        for k in shown:
            r = df[df["main"] & (df["seed"] == seed) & (df["round"] == k)].iloc[0]
            path = require(eval_path(root, seed, k) / "samples.png", "eval", seed, k)
            what = "dense" if k == 0 else f"round {k}: {100 * r['sparsity']:.1f}% sparse"
            ci = f" [{r['fid_ci_low']:.2f}, {r['fid_ci_high']:.2f}]" if pd.notna(r["fid_ci_low"]) else ""
            panels.append((f"seed {seed}, {what}\nFID {r['fid']:.2f}{ci} "
                           f"({extractor_label(r['feature_extractor'], r['extractor_sha256'])}, "
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


def _joined(values) -> str:
    return ", ".join(sorted({str(v) for v in values}))


def _setup(params: Params, df: pd.DataFrame) -> Section:
    main = df[df["main"]]
    rounds = round_ids(params)
    names = _joined(main["feature_extractor"])
    hashes = _joined(h if h != "?" else "not recorded" for h in main["extractor_sha256"])
    n_samples = ", ".join(str(int(n)) for n in sorted(main["num_samples"].unique()))
    first = main.iloc[0]
    boot = (f" FID intervals: {first['fid_ci_method']} ({int(first['fid_bootstrap'])} resamples)."
            if isinstance(first.get("fid_ci_method"), str) and pd.notna(first.get("fid_bootstrap")) else "")
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


def _findings_section(rows: list[dict[str, Any]], margin: float) -> Section:
    sentence = FD.beyond_magnitude_sentence(rows)
    after = ([sentence] if sentence else []) + [
        "Verdicts are computed from the interval, never typed: "
        f"ticket vs dense is a non-inferiority test with margin report.fid_tolerance = {margin:g}; the other "
        "claims are supported when the interval excludes 0 on the predicted side, contradicted when it "
        "excludes 0 on the other, and inconclusive at this scale otherwise. FID intervals over seeds combine "
        "each run's bootstrap std with the between-seed spread (see the test column).",
        f"The layerwise claim (sparser or cheaper at equal FID) is judged by `lth-diffusion report compare` "
        f"from the experiments: {LAYERWISE_RULE}."]
    return Section("Findings", [], [FD.findings_table(rows)], after=after)


def build_report(params: Params, out_dir: Path = Path("reports"), artifacts_root: Path = Path("artifacts")) -> list[Path]:
    """Write every report file under `out_dir`; return their paths."""
    out_dir, root = Path(out_dir), Path(artifacts_root)
    df = load_eval_table(params, root)
    main = df[df["main"]]
    stats = seed_stats(df)
    tol = params.report.fid_tolerance
    rounds = round_ids(params)
    masks = {(s, k): load_json(require(prune_path(root, s, k) / "mask.json", "prune", s, k))
             for s in params.imp.seeds for k in rounds[1:]}
    written: list[Path] = []
    notes: list[str] = []
    figures: dict[str, tuple[str, Path]] = {}

    def figure(name: str, caption: str, fig) -> None:
        path = save_figure(fig, out_dir / name, dpi=110)
        written.append(path)
        figures[name] = (caption, path)

    sim_csv, sim_summary_path = root / "similarity" / "similarity.csv", root / "similarity" / "summary.json"
    sim_summary: Optional[dict] = load_json(sim_summary_path) if sim_summary_path.exists() else None
    findings = FD.collect(df, tol, sim_summary, params.similarity.metric)

    figure("fid_vs_sparsity.png", "FID and KID vs prunable weights remaining: each seed (thin), the mean over "
           "seeds with its 95 % interval (band) and the controls (markers)", F.plot_fid_vs_sparsity(df, stats, tol))
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

    if sim_csv.exists():
        from pipeline.similarity.plots import plot_depth, plot_heatmap

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
    sim_rows = [r for r in findings if r["claim"] in FD.SIM_CLAIMS.values() and r["verdict"] != FD.NOT_MEASURED]
    from pipeline.similarity.plots import plot_claims

    figure("similarity_claims.png", "Similarity claims: effect and 95 % interval",
           plot_claims(sim_summary) if sim_rows else F.plot_claims_forest(sim_rows))
    if sim_summary is None:
        notes.append(f"similarity findings skipped: {sim_summary_path} not found (made by stage 'similarity').")

    rates_path = root / "layer_rates" / "rates.json"
    if rates_path.exists():
        figure("layer_rates.png", "Per-layer ticket agreement and layerwise pruning weights",
               F.plot_layer_rates(load_json(rates_path)))
    else:
        notes.append(f"layer_rates.png skipped: {rates_path} not found (made by stage 'layer_rates').")

    panels, ncols = _sample_panels(params, df, root)
    figure("samples.png", "Sample grids: dense and the sparsest rounds", F.plot_sample_grids(panels, ncols))

    scale, unit = F.macs_unit(df["macs"])
    title = f"LTH diffusion report: {params.sparsity.schedule} schedule, rewind={params.rewind.mode}"
    results = Section("Mean over seeds", [
        "Mean ± sd over the evaluated seeds; the FID interval is the 95 % interval of the mean (verdicts' rule: "
        "between-seed variance plus each run's bootstrap variance, Student-t). Sparsity is the fraction of "
        f"prunable weights removed; MACs count one forward pass of one image with kept weights only ({unit})."],
        [mean_table(stats, scale, unit)])
    per_seed = Section("Results per seed and round", [
        "Each FID with its 95 % bootstrap interval over the generated samples and FID∞ beside it; the extractor "
        "column names the feature extractor and the first 12 hex of its weights' sha256."],
        [round_table(df, scale, unit)])
    best = Section(f"Sparsest ticket within ΔFID ≤ {tol:g} of dense (report.fid_tolerance)")
    for seed in params.imp.seeds:
        best.paragraphs.append(_within_tolerance_sentence(main[main["seed"] == seed], tol, f"Seed {seed}"))
    if len(params.imp.seeds) > 1:
        best.paragraphs.append(_within_tolerance_sentence(main_run_means(df), tol, "Mean over eval seeds"))
    sections = [_findings_section(findings, tol), _setup(params, df), results, per_seed, best]
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
    written.append(save_json(summary_metrics(params, df, FD.json_ready(findings)), out_dir / "metrics.json"))
    written.append(save_text(render_markdown(title, sections), out_dir / "summary.md"))
    written.append(save_text(render_html(title, sections), out_dir / "index.html"))
    return written


__all__ = ["build_report"]
