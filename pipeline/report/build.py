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
from pipeline.data.naming import data_name
from pipeline.report.budget_inputs import budget_check
from pipeline.report.headline import headline
from pipeline.report.inputs import heldout_by_t_table, load_eval_table, require, round_ids
from pipeline.report.paper import means_from_stats, paper_table
from pipeline.report.render import Section, Table, render_html, render_markdown
from pipeline.report.tables import csv_table, mask_table, mean_table, round_table, seed_stats, summary_metrics

SAMPLE_SEEDS = 3  # rows of the sample-grid figure: more seeds would not read


def _sample_panels(params: Params, df: pd.DataFrame, root: Path) -> tuple[list, int, list[str]]:
    """One row per seed (the first SAMPLE_SEEDS): dense, one column per round, then each control at each
    of its rounds (an empty cell where a seed lacks that control)."""
    rounds = round_ids(params)
    ctrl = df.loc[~df["main"], ["kind", "round"]].drop_duplicates().sort_values(["round", "kind"])
    columns = [("dense" if k == 0 else "ticket", k) for k in rounds] + [(str(c), int(k)) for c, k in ctrl.itertuples(index=False)]
    seeds = list(params.imp.seeds)[:SAMPLE_SEEDS]
    panels = []
    for seed in seeds:
        for kind, k in columns:
            rows = df[(df["kind"] == kind) & (df["seed"] == seed) & (df["round"] == k)]
            if rows.empty:
                panels.append(("", None))
                continue
            r = rows.iloc[0]
            folder = paths.eval_dir(seed, k, root) if r["main"] else paths.control_eval_dir(kind, seed, k, root)
            path = require(folder / "samples.png", "eval" if r["main"] else "eval_control", seed, k)
            what = "dense" if k == 0 else (f"round {k}" if r["main"] else f"{kind}, round {k}")
            sparse = "" if k == 0 else f" · {100 * r['sparsity']:.1f} %"
            panels.append((f"{what}{sparse}\nFID {r['fid']:.1f}", path))
    labels = [f"seed {s}" for s in seeds]
    if len(params.imp.seeds) > len(seeds):
        labels[-1] += f" (of {len(params.imp.seeds)})"
    return panels, len(columns), labels


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
    return Section("Methods", [
        f"Data: {data_name(params.data)}; "
        f"U-Net dim {params.model.dim}, dim_mults {list(params.model.dim_mults)}; {len(rounds) - 1} IMP rounds "
        f"removing {params.sparsity.rate:.0%} of surviving prunable weights each ({params.sparsity.schedule} schedule); "
        f"rewind mode {params.rewind.mode}; IMP seeds {list(params.imp.seeds)}, evaluated seeds "
        f"{list(params.imp.seeds)}; controls: {', '.join(controls) if controls else 'none found'}.",
        f"FID and KID use the {names} feature extractor (weights sha256 {hashes}) on {n_samples} generated "
        f"samples ({_joined(main['sampler'])} sampler); FID values from different extractors or sample counts "
        f"are not comparable; FID∞ is the N → ∞ extrapolation (Chong & Forsyth 2020).{boot}"])


def verdict_rules(params: Params) -> list[str]:
    """How every verdict is decided, stated once (the Methods section)."""
    return [
        FD.methods_paragraph(params) + f" Population: {params.population()}.",
        f"The layerwise claim (sparser or cheaper tickets at non-inferior FID) is judged by `lth-diffusion report compare` "
        f"on the frontier of each run: {text.LAYERWISE_FRONTIER_RULE}."]


def caveats(rows: list[dict[str, Any]], params: Params, fr, notes: list[str]) -> list[str]:
    """The findings' numbered footnotes: what limits a reading of the table."""
    sentence = FD.beyond_magnitude_sentence(rows)
    conv = fr.converged if fr is not None else None
    out = FD.footnote_lines(rows)
    out += [text.seeds_convergence_sentence(conv) + " (descriptive: no verdict uses it)"] if conv is not None else []
    if sentence:
        out.append(sentence)
    return out + notes


def _findings_section(rows: list[dict[str, Any]], notes: list[str]) -> Section:
    return Section("Findings", [], [FD.findings_table(rows)], notes=notes)


def answer(rows: list[dict[str, Any]]) -> str:
    """One sentence that answers the primary question."""
    return FD.answer_sentence(FD.primary_finding(rows))


def budget_sentence(budget: Optional[dict[str, Any]]) -> str:
    """The primary claim's budget evidence in one sentence: its verdict at T and at budget.factor x T."""
    if budget is None:
        return "Budget check: off (budget.seeds: []), so the primary verdict is provisional."
    if budget.get("stable") is None:
        return f"Budget check: not measured ({', '.join(budget['inputs'].get('missing', [])[:2]) or 'too few seeds'})."

    def at(iv: dict) -> str:
        return f"{iv['ratio']:.2f}× [{iv['low']:.2f}, {iv['high']:.2f}]"

    # one rule at both budgets (pipeline.stats.budget: between-seed t on the log ratios, no shared-noise
    # term), so its T interval is not the primary row's; the sentence says which it is
    return (f"Budget check, FID ratio ticket / dense at round {budget['round']} (per-seed t interval, the same "
            f"rule at both budgets): {at(budget['interval_T'])} "
            f"after {budget['steps_T']:,} steps ({budget['verdict_T']}), {at(budget['interval_2T'])} after "
            f"{budget['steps_2T']:,} ({budget['verdict_2T']}): "
            + ("the verdict is budget-stable." if budget["stable"] else "the verdict changes with the budget."))


def title(params: Params, df: pd.DataFrame) -> str:
    """What was studied: dataset, resolution, model size, schedule."""
    d = params.data
    dense = df[df["kind"] == "dense"]
    n = int(dense["params_total"].iloc[0]) if len(dense) and pd.notna(dense["params_total"].iloc[0]) else None
    size = f", {n / 1e6:.2f} M-parameter U-Net" if n and n >= 1e6 else f", {n / 1e3:.0f} k-parameter U-Net" if n else ""
    return (f"Lottery tickets in a diffusion U-Net: {d.label or d.dataset} {d.image_size}×{d.image_size}{size}, "
            f"{params.sparsity.schedule} schedule, rewind {params.rewind.mode}")


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
    best.paragraphs += [f"Over seeds (geometric-mean FID ratio ticket / dense): {text.frontier_sentence(fr.over_seeds)}.",
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
    primary_k = FD.primary_round(params, df)[0]
    budget = budget_check(params, root, primary_round=primary_k)
    evidence = None if budget is None or budget.get("stable") is None else budget
    findings = FD.collect(params, df, runs, fr, sim_summary, params.similarity.metric, budget=evidence)

    stops = {}
    if fr is not None:
        for seed, f in fr.seeds.per_seed:
            row = df[(df["kind"] == "ticket") & (df["seed"] == seed) & (df["round"] == (f.stopped_at or -1))]
            stops[seed] = (float(row["remaining_pct"].iloc[0]), float(row["fid"].iloc[0])) if len(row) else None
    figure("fid_vs_sparsity.png", "Left: FID vs prunable weights remaining, each seed (thin) and the mean with its 95 % "
           "interval; X where a seed's fixed sequence of tests stops. Middle: ΔFID ticket − dense with the "
           "non-inferiority margin (green). Right: the ticket beside the controls at the control rounds.",
           F.plot_fid_vs_sparsity(df, stats, fr.fid_margin if fr is not None else None, stops,
                                  fr.deltas if fr is not None else None))
    curves = {s: runs[("dense", s, 0)].curve for s in params.imp.seeds if runs.get(("dense", s, 0)) is not None}
    figure("dense_convergence.png", "Dense baseline: paired per-item improvement of the held-out loss between "
           "convergence checks, per seed, with the interval whose upper end the convergence check compares with "
           "the tolerance", F.plot_convergence(fr.converged if fr is not None else None, curves, params.report.level))
    figure("fid_vs_cost.png", "FID vs MACs and vs compressed storage, and KID vs remaining weights (seeds, mean, "
           "controls)", F.plot_fid_vs_cost(df, stats))
    by_t = heldout_by_t_table(df)
    figure("heldout_by_t.png", "Held-out denoising loss relative to dense per timestep bucket, mean over seeds",
           F.plot_heldout_by_t(by_t))
    if by_t.empty:
        notes.append("heldout_by_t: no metrics file has heldout_loss_by_t / heldout_t_edges.")
    stale = out_dir / "layer_sparsity.png"
    if len(rounds) > 1:
        seed, k = params.imp.seeds[0], rounds[-1]
        if F.layers_uniform(masks[(seed, k)]):
            stale.unlink(missing_ok=True)  # a figure of an earlier schedule must not stay beside this report
            notes.append(f"No per-layer sparsity figure: every layer of the seed {seed} round {k} ticket has the "
                         f"same sparsity ({100 * masks[(seed, k)]['sparsity']:.1f} %).")
        else:
            figure("layer_sparsity.png", f"Per-layer sparsity of the seed {seed} round {k} ticket",
                   F.plot_layer_sparsity(masks[(seed, k)]))
    else:
        stale.unlink(missing_ok=True)
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

    panels, ncols, row_labels = _sample_panels(params, df, root)
    figure("samples.png", "Sample grids: one column per round (dense first), then each control at each control "
           "round; FID of that seed's run under each grid", F.plot_sample_grids(panels, ncols, row_labels))

    scale, unit = F.macs_unit(df["macs"])
    page_title = title(params, df)
    lead_caption, lead_path = figures.pop("fid_vs_sparsity.png")
    answer_said, budget_said = answer(findings), budget_sentence(budget)
    lead = Section("Answer", [answer_said, budget_said], [paper_table(means_from_stats(stats, params.sparsity.schedule),
                                                                  params.sparsity.schedule, scale, unit)],
                   figures=[(lead_caption, lead_path)], lead=True)
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
    sim_text = sim_summary.get("finding") if isinstance(sim_summary, dict) else None
    methods = _setup(params, df)
    methods.paragraphs += verdict_rules(params)
    sections = [lead, _findings_section(findings, caveats(findings, params, fr, notes)),
                Section("Figures", figures=list(figures.values())), best,
                Section("Ticket similarity", [sim_text] if isinstance(sim_text, str) else
                        ["No similarity summary available."]),
                methods, results, per_seed]
    if masks:
        sections.append(Section("Ticket sparsity per seed (from mask.json)", [], [mask_table(params, masks)]))

    written.append(save_text(csv_table(params, df).to_csv(index=False), out_dir / "fid_vs_sparsity.csv"))
    written.append(save_text(by_t.to_csv(index=False), out_dir / "heldout_by_t.csv"))
    summary = summary_metrics(params, df, FD.json_ready(findings), FR.json_frontier(fr))
    summary["answer"], summary["budget_check"] = answer_said, budget_said  # the page's opening, for the README
    written.append(save_json(summary, out_dir / "metrics.json"))
    top = FD.primary_finding(findings)
    written.append(save_json(headline(summary, FD.json_ready([top])[0] if top else None), out_dir / "headline.json"))
    written.append(save_text(render_markdown(page_title, sections), out_dir / "summary.md"))
    written.append(save_text(render_html(page_title, sections), out_dir / "index.html"))
    return written


__all__ = ["build_report"]
