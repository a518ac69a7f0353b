"""Across experiments: the workspace, its baseline commit and every DVC experiment side by side,
with the spread over seeds, each run's sparsest non-inferior ticket ranked, and a verdict on the
layerwise claim decided on that frontier.

Everything comes through DVC (`dvc exp show --json`, read by pipeline.report.exp_show). FIDs measured
with different feature extractors are never put on one plot or into one verdict.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from pipeline.core.config import ConfigError  # noqa: E402
from pipeline.report.exp_show import (CONTROL_METRICS, EVAL_METRICS, ROUND_COLUMNS, UNHASHED, exp_show_json,  # noqa: E402,F401
                       parse_exp_show)
from pipeline.core.io import save_figure, save_json, save_text  # noqa: E402
from pipeline.report import text  # noqa: E402
from pipeline.report.compare_paired import paired_markdown, paired_rounds  # noqa: E402
from pipeline.report.compare_runs import check_not_fewer, load_runs, save_runs  # noqa: E402
from pipeline.stats.ranking import ScheduleFrontier, layerwise_verdict, rank_schedules  # noqa: E402
from pipeline.stats.tdist import cut, t_interval  # noqa: E402

NOT_MEASURED = "not measured"


def main_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """The IMP chain's rows (dense and tickets); controls are kept apart."""
    return rows[rows["kind"].isin(["dense", "ticket"])]


# -- extractors: FIDs from different feature extractors are different quantities ---------------------
def extractor_groups(rows: pd.DataFrame) -> dict[str, list[str]]:
    """{extractor sha256: experiments measured with it}; an experiment whose own runs disagree is refused."""
    groups: dict[str, list[str]] = {}
    for name, r in rows.groupby("experiment", sort=False):
        hashes = sorted(set(r["extractor_sha256"]))
        if len(hashes) > 1:
            raise ConfigError(f"experiment {name}: its metrics files name {len(hashes)} different FID extractors "
                              f"({', '.join(h[:12] for h in hashes)}); re-run its eval stages with one extractor")
        groups.setdefault(hashes[0], []).append(name)
    return groups


def check_one_extractor(groups: dict[str, list[str]]) -> None:
    """Refuse to put FIDs of different extractors (or unhashed ones) on one plot or in one verdict."""
    if len(groups) > 1:
        listing = "; ".join(f"{_short(h)}: {', '.join(names)}" for h, names in groups.items())
        raise ConfigError(f"the runs used different FID extractors ({listing}); their FIDs are not comparable. "
                          "Re-run the odd ones' eval stages, or pass --split-extractors to compare each group apart")


def _short(sha: str) -> str:
    return "unhashed" if sha == UNHASHED else sha[:12]


# -- numbers ---------------------------------------------------------------------------------------------
CURVE_INTERVAL = ("the 95 % t-interval of the mean over seeds from the between-seed variance, truncated at 0 "
                  "(`dvc exp show` carries no split replicates, so the sampling noise the seeds share is left out "
                  "here; each run's own report has the full interval)")


def experiment_curves(rows: pd.DataFrame) -> pd.DataFrame:
    """Per experiment and round of the main chain: means over eval seeds, the between-seed sd, and the
    95 % t-interval of the mean FID from the between-seed variance (CURVE_INTERVAL), truncated at 0."""
    out = []
    for (name, k), g in main_rows(rows).groupby(["experiment", "round"], sort=False):
        _, low, high, _ = t_interval(g["fid"].tolist())
        low, high = cut(low, high)
        sd = float(g["fid"].std(ddof=1)) if len(g) > 1 else float("nan")
        out.append({"experiment": name, "round": int(k), "seeds": int(g["seed"].nunique()),
                    **{c: float(g[c].mean()) for c in ("sparsity", "remaining_pct", "fid", "fid_inf", "kid_mean",
                                                       "macs", "storage_bytes")},
                    "fid_sd": sd, "fid_low": low, "fid_high": high})
    cols = ["experiment", "round", "seeds", "sparsity", "remaining_pct", "fid", "fid_inf", "kid_mean", "macs",
            "storage_bytes",
            "fid_sd", "fid_low", "fid_high"]
    return pd.DataFrame(out, columns=cols).sort_values(["experiment", "round"], kind="stable")


def _frontier_of(e: pd.Series, rows: pd.DataFrame) -> Optional[ScheduleFrontier]:
    """The experiment's sparsest non-inferior ticket per seed (its report's fixed-sequence test) with
    that ticket's MACs and storage; None when its report has no frontier."""
    f = e["frontier"]
    if not isinstance(f, dict) or not isinstance(f.get("per_seed"), dict):
        return None
    main = main_rows(rows[rows["experiment"] == e["experiment"]])
    cost = lambda col: {int(s): {int(k): float(v) for k, v in g.set_index("round")[col].items()}
                        for s, g in main.groupby("seed")}
    macs, storage = cost("macs"), cost("storage_bytes")
    seeds = sorted(int(s) for s in f["per_seed"])
    ps = {int(s): v for s, v in f["per_seed"].items()}
    try:
        return ScheduleFrontier(name=str(e["schedule"]), seeds=tuple(seeds),
                                sparsity=tuple(float(ps[s]["sparsity"]) for s in seeds),
                                global_sparsity=tuple(float(ps[s]["global_sparsity"]) for s in seeds),
                                macs=tuple(macs[s][int(ps[s]["round"])] for s in seeds),
                                storage=tuple(storage[s][int(ps[s]["round"])] for s in seeds),
                                censored=tuple(ps[s]["status"] == "censored" for s in seeds),
                                ceiling=tuple(float(ps[s]["last_sparsity"]) for s in seeds),
                                provisional=bool(f.get("provisional")))
    except KeyError:
        return None


def summary_table(rows: pd.DataFrame, exps: pd.DataFrame) -> pd.DataFrame:
    """One row per experiment: its dense and final FID, and the sparsest non-inferior ticket of its
    report (per-seed mean with a t-interval over seeds, MACs, storage, censored seeds), ranked."""
    curves = experiment_curves(rows)
    out = []
    for _, e in exps.iterrows():
        c = curves[curves["experiment"] == e["experiment"]].sort_values("round")
        r = main_rows(rows[rows["experiment"] == e["experiment"]])
        dense, final = c[c["round"] == 0], c.iloc[-1]
        fr = _frontier_of(e, rows)
        ranked = rank_schedules([fr]).iloc[0].to_dict() if fr is not None else {}
        out.append({
            "experiment": e["experiment"], "rev": e["rev"], "schedule": e["schedule"], "rewind": e["rewind"],
            "seeds": ",".join(str(s) for s in sorted(r["seed"].unique())),
            "feature_extractor": ",".join(sorted(r["feature_extractor"].astype(str).unique())),
            "extractor_sha256": ",".join(sorted(r["extractor_sha256"].astype(str).unique())),
            "num_samples": ",".join(str(n) for n in sorted(r["num_samples"].unique())),
            "rounds": int(c["round"].max()),
            "dense_fid": float(dense["fid"].iloc[0]) if not dense.empty else float("nan"),
            "dense_fid_sd": float(dense["fid_sd"].iloc[0]) if not dense.empty else float("nan"),
            "dense_fid_low": float(dense["fid_low"].iloc[0]) if not dense.empty else float("nan"),
            "dense_fid_high": float(dense["fid_high"].iloc[0]) if not dense.empty else float("nan"),
            "final_sparsity": float(final["sparsity"]), "final_fid": float(final["fid"]),
            "final_fid_sd": float(final["fid_sd"]), "final_fid_low": float(final["fid_low"]),
            "final_fid_high": float(final["fid_high"]), "final_fid_inf": float(final["fid_inf"]),
            "final_macs": float(final["macs"]), "final_storage_bytes": float(final["storage_bytes"]),
            "margin": e["margin"], "dense_converged": e["dense_converged"],
            **{f"frontier_{k}": ranked.get(k, float("nan")) for k in FRONTIER_COLUMNS},
        })
    out = pd.DataFrame(out)
    return out.sort_values(["frontier_sparsity_mean", "frontier_macs_mean"], ascending=[False, True],
                           kind="stable", na_position="last").reset_index(drop=True)


FRONTIER_COLUMNS = ("sparsity_mean", "sparsity_low", "sparsity_high", "global_sparsity_mean", "macs_mean",
                    "macs_low", "macs_high", "storage_mean", "censored", "sparsity_lower_bound", "provisional")
CLAIM = "layerwise finds sparser or cheaper tickets at non-inferior FID (vs uniform)"


def layerwise_findings(rows: pd.DataFrame, exps: pd.DataFrame) -> list[dict[str, Any]]:
    """One verdict row per layerwise experiment against a uniform experiment of the same rewind mode
    (else any uniform one), decided on the frontier: each schedule's sparsest non-inferior ticket
    per seed (pipeline.stats.ranking.layerwise_verdict; rule text.LAYERWISE_FRONTIER_RULE)."""
    uniform = exps[exps["schedule"] == "uniform"]
    out = []
    for _, lw in exps[exps["schedule"] == "layerwise"].iterrows():
        same = uniform[uniform["rewind"] == lw["rewind"]]
        base = same if not same.empty else uniform
        row = {"claim": CLAIM, "layerwise": lw["experiment"], "uniform": None, "verdict": NOT_MEASURED,
               "effect": float("nan"), "ci": [float("nan"), float("nan")], "macs_ratio": float("nan"),
               "macs_ratio_ci": [float("nan"), float("nan")], "exact_p": float("nan"), "test": ""}
        if base.empty:
            out.append({**row, "test": "no uniform-schedule run to compare with"})
            continue
        u = base.iloc[0]
        a, b = _frontier_of(lw, rows), _frontier_of(u, rows)
        if a is None or b is None:
            out.append({**row, "uniform": u["experiment"],
                        "test": "a run's reports/metrics.json has no frontier (re-run its report stage)"})
            continue
        v = layerwise_verdict([a, b], test=a.name, reference=b.name)
        out.append({**row, "uniform": u["experiment"], "verdict": text.layerwise_verdict_text(v), "effect": v.sparsity_diff,
                    "ci": [v.sparsity_diff_low, v.sparsity_diff_high], "macs_ratio": v.macs_ratio,
                    "macs_ratio_ci": [v.macs_ratio_low, v.macs_ratio_high], "exact_p": v.sparsity_sign_flip_p,
                    "n_paired": v.n_paired, "reason": text.layerwise_reason(v), "sentence": text.layerwise_sentence(v),
                    "test": text.LAYERWISE_FRONTIER_RULE + ("" if u["rewind"] == lw["rewind"] else
                                      f" (no uniform run with rewind {lw['rewind']}: compared with rewind {u['rewind']})")})
    return out


def _label(e: pd.Series) -> str:
    return (f"{e['experiment']} ({e['schedule']}, rewind={e['rewind']}; {e['feature_extractor']} "
            f"{_short(e['extractor_sha256'])}, N={e['num_samples']})")


def plot_compare(rows: pd.DataFrame, summary: pd.DataFrame, x: str, title_suffix: str = ""):
    """FID vs `x` ('remaining_pct' or 'macs'): per experiment each seed (thin) and the mean over its
    seeds with the 95 % interval of the mean (band)."""
    from pipeline.report.figures import log_axis_plain, macs_unit, sparsity_axis

    curves = experiment_curves(rows)
    main = main_rows(rows)
    fig, ax = plt.subplots(figsize=(9, 5.5))
    scale, unit = macs_unit(main["macs"]) if x == "macs" else (1.0, "")
    cmap = plt.get_cmap("tab10")
    for i, (_, e) in enumerate(summary.iterrows()):
        color = cmap(i % 10)
        r = main[main["experiment"] == e["experiment"]]
        for seed, s in r.groupby("seed"):
            s = s.sort_values("sparsity")
            ax.plot(s[x] / scale, s["fid"], color=color, lw=0.8, alpha=0.4, marker=".",
                    label=f"{e['experiment']} seed {seed}")
        c = curves[curves["experiment"] == e["experiment"]].sort_values("sparsity")
        ax.plot(c[x] / scale, c["fid"], color=color, lw=2, marker="o", label=f"mean: {_label(e)}")
        ax.fill_between(c[x] / scale, c["fid_low"].fillna(c["fid"]), c["fid_high"].fillna(c["fid"]), color=color,
                        alpha=0.12)
    extractors = ", ".join(sorted({f"{n} {_short(h)}" for n, h in zip(main["feature_extractor"], main["extractor_sha256"])}))
    what = "thin: each seed; thick: mean with 95 % CI band"
    if x == "remaining_pct":
        sparsity_axis(ax, main["remaining_pct"])
        ax.set_title(f"FID vs remaining weights across experiments{title_suffix}\n({what})", fontsize=10)
    else:
        log_axis_plain(ax)
        ax.grid(True, which="both", alpha=0.3)
        ax.set_xlabel(f"multiply-accumulates per image forward ({unit}, kept weights only, log scale)")
        ax.set_title(f"FID vs compute across experiments{title_suffix}\n({what})", fontsize=10)
    ax.set_ylabel(f"FID ({extractors} features; lower is better)")
    ax.legend(fontsize=6)
    fig.tight_layout()
    return fig


def _cell(v: Any, spec: str = "") -> str:
    if v is None or (isinstance(v, float) and pd.isna(v)):
        return "–"
    return format(v, spec) if spec else str(v)


def _pm(mean: float, sd: float) -> str:
    return f"{_cell(mean, '.2f')} ± {_cell(sd, '.2f')}"


def _pm_ci(s: pd.Series, col: str) -> str:
    return f"{_pm(s[col], s[col + '_sd'])} [{_cell(s[col + '_low'], '.2f')}, {_cell(s[col + '_high'], '.2f')}]"


def _group_markdown(summary: pd.DataFrame, findings: list[dict], suffix: str, heading: Optional[str]) -> list[str]:
    from pipeline.report.figures import macs_unit

    scale, unit = macs_unit(summary["final_macs"])
    lines = [f"## {heading}", ""] if heading else []
    lines += ["| claim | layerwise run | uniform run | Δ sparsity of the sparsest non-inferior ticket (pp) | "
              "95 % interval | exact sign-flip p | MACs ratio [95 % interval] | verdict | why |", "|" + "---|" * 9]
    if not findings:
        lines.append(f"| {CLAIM} | – | – | – | – | – | – | {NOT_MEASURED} | no layerwise experiment among these runs |")
    for f in findings:
        lo, hi = f["ci"]
        mlo, mhi = f["macs_ratio_ci"]
        lines.append("| " + " | ".join([
            f["claim"], f["layerwise"], _cell(f["uniform"]), _cell(100 * f["effect"], "+.2f"),
            f"[{_cell(100 * lo, '.2f')}, {_cell(100 * hi, '.2f')}]", _cell(f["exact_p"], ".2g"),
            f"{_cell(f['macs_ratio'], '.3f')} [{_cell(mlo, '.3f')}, {_cell(mhi, '.3f')}]", f["verdict"],
            f.get("reason") or f["test"]]) + " |")
    if findings and findings[0].get("test"):
        lines += ["", f"Rule: {findings[0]['test']}."]
    header = ["rank", "experiment", "rev", "schedule", "rewind", "seeds", "extractor", "N", "rounds",
              "dense FID mean ± sd [95 % CI]", "sparsest non-inferior: prunable sparsity (%) mean [95 % CI]",
              "of all weights (%)", f"its MACs ({unit})", "its storage (KiB)", "censored seeds",
              "final sparsity (%)", "final FID mean ± sd [95 % CI]"]
    lines += ["", "Ranked by the sparsest non-inferior ticket of each run's own report (fixed-sequence "
              "non-inferiority, margin report.margin of the dense FID); a censored seed reached the last round "
              "studied, so its value is a lower bound.", "",
              "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for i, s in summary.iterrows():
        fmt_pct = lambda v: _cell(100 * v, ".2f") if pd.notna(v) else "–"
        bound = "≥ " if s["frontier_sparsity_lower_bound"] is True else ""
        lines.append("| " + " | ".join([
            str(i + 1), s["experiment"], s["rev"], s["schedule"], s["rewind"], s["seeds"],
            f"{s['feature_extractor']} {_short(s['extractor_sha256'])}", s["num_samples"], str(s["rounds"]),
            _pm_ci(s, "dense_fid"),
            f"{bound}{fmt_pct(s['frontier_sparsity_mean'])} [{fmt_pct(s['frontier_sparsity_low'])}, "
            f"{fmt_pct(s['frontier_sparsity_high'])}]", fmt_pct(s["frontier_global_sparsity_mean"]),
            _cell(s["frontier_macs_mean"] / scale, ".3f"), _cell(s["frontier_storage_mean"] / 1024, ".1f"),
            _cell(s["frontier_censored"]), _cell(100 * s["final_sparsity"], ".2f"), _pm_ci(s, "final_fid")]) + " |")
    lines += ["", f"![FID vs sparsity](compare_fid_vs_sparsity{suffix}.png)", "",
              f"![FID vs MACs](compare_fid_vs_macs{suffix}.png)", ""]
    return lines


def _markdown(groups: list[tuple[str, pd.DataFrame, list[dict], pd.DataFrame]], notes: list[str]) -> str:
    n = sum(len(summary) for _, summary, _, _ in groups)
    lines = ["# Experiments compared", "",
             f"{n} run(s) from `dvc exp show` (workspace, baseline commit, experiments), each kept under runs/ beside "
             "this file so that `lth-diffusion report compare` rebuilds these tables in a clone. FID: mean ± sd over each "
             f"run's eval seeds, with {CURVE_INTERVAL}; plots show each seed thin and the mean with that interval "
             "as a band. Controls (artifacts/eval/controls/) are not part of these curves.", ""]
    split = len(groups) > 1
    if split:
        lines += ["The runs used different FID extractors, so each extractor's runs are compared apart below; "
                  "never compare FIDs across these sections.", ""]
    for suffix, summary, findings, paired in groups:
        heading = None
        if split:
            name, sha = summary["feature_extractor"].iloc[0], summary["extractor_sha256"].iloc[0]
            heading = f"Runs measured with extractor {name} {_short(sha)} (sha256 {sha})"
        lines += _group_markdown(summary, findings, suffix, heading)
        lines += paired_markdown(paired)
    if n == 1:
        lines += ["Only one run has eval metrics (no DVC experiments yet); run e.g. "
                  "`dvc exp run -S sparsity.schedule=layerwise` to add one.", ""]
    if notes:
        lines += ["## Notes", ""] + [f"- {x}" for x in notes] + [""]
    return "\n".join(lines)


def gather_runs(out_dir: Path, repo: Path, force: bool, runs_dir: Optional[Path] = None,
                split_extractors: bool = False) -> tuple:
    """The runs the report is built from: those `dvc exp show` has now, written into runs/ (merged with the
    runs committed there), then all of runs/ read back (pipeline.report.compare_runs), so a clone without
    the experiments rebuilds the same tables. Refuses, before writing anything, to replace a report built
    from more runs with one from fewer, unless `force`."""
    runs_dir = Path(runs_dir) if runs_dir is not None else Path(out_dir) / "runs"
    try:
        live_rows, live_exps, live_notes = parse_exp_show(exp_show_json(repo))
    except ConfigError:
        if not (runs_dir / "index.json").exists():
            raise
        live_rows, live_exps, live_notes = None, pd.DataFrame(columns=["experiment"]), []  # committed runs only
    old_rows, old_exps, _ = load_runs(runs_dir)
    names = set(old_exps["experiment"]) | set(live_exps["experiment"])
    check_not_fewer(Path(out_dir), len(names), force)
    if len(live_exps):
        if not split_extractors:  # refuse mixed extractors before anything is written
            merged = pd.concat([old_rows[~old_rows["experiment"].isin(live_exps["experiment"])], live_rows])
            if not merged.empty:
                check_one_extractor(extractor_groups(merged))
        save_runs(live_rows, live_exps, live_notes, runs_dir)
    return load_runs(runs_dir)


def compare(out_dir: Path = Path("reports/compare"), repo: Path = Path("."), split_extractors: bool = False,
            force: bool = False, runs_dir: Optional[Path] = None) -> list[Path]:
    """Plots and tables comparing every DVC experiment's sparsity/FID/MACs curves, with spread over seeds
    and a verdict on the layerwise claim. Runs measured with different FID extractors are refused, or
    with `split_extractors` compared apart (one set of plots per extractor, suffixed by its short hash).
    The runs come through `gather_runs` (committed under out_dir/runs/; `force` allows fewer runs)."""
    rows, exps, notes = gather_runs(out_dir, repo, force, runs_dir, split_extractors)
    if rows.empty:
        raise ConfigError(f"{Path(repo).resolve()}: no run has artifacts/eval/s*/r*/metrics.json among its DVC "
                          "metrics; run the pipeline (`dvc repro`) and declare them as metrics in dvc.yaml")
    groups = extractor_groups(rows)
    if not split_extractors:
        check_one_extractor(groups)
    out_dir = Path(out_dir)
    written, sections = [], []
    for sha, names in groups.items():
        suffix = f"-{_short(sha)}" if len(groups) > 1 else ""
        r, e = rows[rows["experiment"].isin(names)], exps[exps["experiment"].isin(names)]
        summary = summary_table(r, e)
        findings = layerwise_findings(r, e)
        paired = paired_rounds(r, e)  # the FID axis: per round, paired on seed
        title = f" (extractor {_short(sha)})" if suffix else ""
        written += [
            save_figure(plot_compare(r, summary, "remaining_pct", title), out_dir / f"compare_fid_vs_sparsity{suffix}.png",
                        dpi=110),
            save_figure(plot_compare(r, summary, "macs", title), out_dir / f"compare_fid_vs_macs{suffix}.png", dpi=110),
            save_text(summary.to_csv(index=False), out_dir / f"compare{suffix}.csv"),
            save_text(paired.to_csv(index=False), out_dir / f"compare_paired{suffix}.csv"),
        ]
        sections.append((suffix, summary, findings, paired))
    written += [save_text(rows.to_csv(index=False), out_dir / "compare_rounds.csv"),
                save_json(_clean([f for _, _, fs, _ in sections for f in fs]), out_dir / "compare_findings.json"),
                save_text(_markdown(sections, notes), out_dir / "compare.md")]
    return written


def _clean(obj: Any) -> Any:
    """NaN -> None, so the JSON stays valid."""
    if isinstance(obj, float) and obj != obj:
        return None
    if isinstance(obj, list):
        return [_clean(x) for x in obj]
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    return obj
