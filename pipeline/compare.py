"""Across experiments: the workspace, its baseline commit and every DVC experiment side by side.

Everything comes through DVC (`dvc exp show --json`), which reads each experiment's params and
its eval metrics files (declared as DVC metrics, `cache: false`) from the experiment's commit, so
no experiment has to be checked out. The JSON walk is the pure function `parse_exp_show`.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Optional

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from .config import ConfigError  # noqa: E402
from .io import save_figure, save_text  # noqa: E402

# artifacts/eval/s{seed}/r{k}/metrics.json: the main run's per-round metrics
EVAL_METRICS = re.compile(r"(?:^|/)artifacts/eval/s(\d+)/r(\d+)/metrics\.json$")
ROUND_COLUMNS = ["experiment", "rev", "schedule", "rewind", "seed", "round", "sparsity", "remaining_pct", "fid",
                 "kid_mean", "macs", "storage_bytes", "feature_extractor", "num_samples"]
DEFAULT_TOLERANCE = 10.0  # report.fid_tolerance's default, used when an experiment's params lack it


def _get(tree: Any, *keys: str) -> Any:
    for k in keys:
        if not isinstance(tree, dict) or k not in tree:
            return None
        tree = tree[k]
    return tree


def _entries(exp_show: list[dict]) -> list[tuple[str, dict]]:
    """(display name, rev entry): experiments first, then baseline commits, then the workspace, so
    that an entry identical to another keeps the most specific name."""
    exps, baselines, workspace = [], [], []
    for top in exp_show:
        rev = top.get("rev", "")
        if rev == "workspace":
            workspace.append(("workspace", top))
        else:
            baselines.append((top.get("name") or rev[:7], top))
        for exp in top.get("experiments") or []:
            revs = exp.get("revs") or []
            if revs:  # the first rev is the experiment's result commit
                exps.append((exp.get("name") or revs[0].get("name") or revs[0].get("rev", "")[:7], revs[0]))
    return exps + baselines + workspace


def parse_exp_show(exp_show: list[dict]) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """From `dvc exp show --json`: (per-round rows, per-experiment params, notes).

    Rows have ROUND_COLUMNS; the params frame has experiment, rev, schedule, rewind, fid_tolerance.
    Entries without eval metrics, with errors, or identical to another entry (the workspace right
    after `dvc exp run` equals that experiment) are left out, each with a note.
    """
    rows, exps, notes = [], [], []
    seen: dict[str, str] = {}
    for name, entry in _entries(exp_show):
        if entry.get("error"):
            notes.append(f"{name}: skipped, DVC reported an error ({_get(entry, 'error', 'msg') or entry['error']}).")
            continue
        data = entry.get("data") or {}
        params = _get(data, "params", "params.yaml", "data") or {}
        metrics = data.get("metrics") or {}
        evals = {}
        for path, content in metrics.items():
            m = EVAL_METRICS.search(path)
            if m and isinstance(content, dict) and isinstance(content.get("data"), dict):
                evals[(int(m[1]), int(m[2]))] = content["data"]
        if not evals:
            notes.append(f"{name}: skipped, no artifacts/eval/s*/r*/metrics.json among its DVC metrics.")
            continue
        key = json.dumps({"params": params, "metrics": metrics}, sort_keys=True, default=str)
        if key in seen:
            notes.append(f"{name}: identical params and metrics to {seen[key]}, shown once as {seen[key]}.")
            continue
        seen[key] = name
        pruned = [m for (s, k), m in sorted(evals.items()) if k > 0]
        schedule = _get(params, "sparsity", "schedule") or (pruned[0].get("schedule") if pruned else None) or "?"
        rewind = _get(params, "rewind", "mode") or (pruned[0].get("rewind") if pruned else None) or "?"
        tol = _get(params, "report", "fid_tolerance")
        rev = str(entry.get("rev", ""))
        rev = rev if rev == "workspace" else rev[:7]
        exps.append({"experiment": name, "rev": rev, "schedule": schedule, "rewind": rewind,
                     "fid_tolerance": float(tol) if tol is not None else float("nan")})
        for (seed, k), m in sorted(evals.items()):
            sparsity = float(m.get("sparsity", 0.0))
            rows.append({"experiment": name, "rev": rev, "schedule": schedule, "rewind": rewind, "seed": seed,
                         "round": k, "sparsity": sparsity, "remaining_pct": 100.0 * (1.0 - sparsity),
                         "fid": _num(m.get("fid")), "kid_mean": _num(m.get("kid_mean")),
                         "macs": _num(m.get("macs")), "storage_bytes": _num(m.get("storage_bytes")),
                         "feature_extractor": m.get("feature_extractor", "?"),
                         "num_samples": int(m.get("num_samples", 0))})
    return (pd.DataFrame(rows, columns=ROUND_COLUMNS),
            pd.DataFrame(exps, columns=["experiment", "rev", "schedule", "rewind", "fid_tolerance"]), notes)


def _num(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")


def experiment_curves(rows: pd.DataFrame) -> pd.DataFrame:
    """Per experiment and round: the mean over its eval seeds (one line per experiment)."""
    cols = ["sparsity", "remaining_pct", "fid", "kid_mean", "macs", "storage_bytes"]
    g = rows.groupby(["experiment", "round"], sort=False)
    out = g[cols].mean().reset_index()
    out["seeds"] = g["seed"].nunique().to_numpy()
    return out.sort_values(["experiment", "round"], kind="stable")


def summary_table(rows: pd.DataFrame, exps: pd.DataFrame, default_tolerance: float) -> pd.DataFrame:
    from .report import sparsest_within_tolerance

    curves = experiment_curves(rows)
    out = []
    for _, e in exps.iterrows():
        c = curves[curves["experiment"] == e["experiment"]].sort_values("round")
        r = rows[rows["experiment"] == e["experiment"]]
        tol = e["fid_tolerance"] if pd.notna(e["fid_tolerance"]) else default_tolerance
        dense, final = c[c["round"] == 0], c.iloc[-1]
        best = sparsest_within_tolerance(c, tol) if not dense.empty else None
        out.append({
            "experiment": e["experiment"], "rev": e["rev"], "schedule": e["schedule"], "rewind": e["rewind"],
            "seeds": ",".join(str(s) for s in sorted(r["seed"].unique())),
            "feature_extractor": ",".join(sorted(r["feature_extractor"].astype(str).unique())),
            "num_samples": ",".join(str(n) for n in sorted(r["num_samples"].unique())),
            "rounds": int(c["round"].max()),
            "dense_fid": float(dense["fid"].iloc[0]) if not dense.empty else float("nan"),
            "final_sparsity": float(final["sparsity"]), "final_fid": float(final["fid"]),
            "final_macs": float(final["macs"]), "final_storage_bytes": float(final["storage_bytes"]),
            "fid_tolerance": tol,
            "sparsest_within_tol_round": int(best["round"]) if best is not None else None,
            "sparsest_within_tol_sparsity": float(best["sparsity"]) if best is not None else float("nan"),
        })
    out = pd.DataFrame(out)
    out["sparsest_within_tol_round"] = out["sparsest_within_tol_round"].astype("Int64")
    return out


def _label(e: pd.Series) -> str:
    return f"{e['experiment']} ({e['schedule']}, rewind={e['rewind']}; {e['feature_extractor']}, N={e['num_samples']})"


def plot_compare(rows: pd.DataFrame, summary: pd.DataFrame, x: str):
    """FID vs `x` ('remaining_pct' or 'macs'), one line per experiment (mean over its eval seeds)."""
    from .report import _macs_unit, _sparsity_axis, log_axis_plain

    curves = experiment_curves(rows)
    fig, ax = plt.subplots(figsize=(9, 5.5))
    scale, unit = _macs_unit(rows["macs"]) if x == "macs" else (1.0, "")
    for _, e in summary.iterrows():
        c = curves[curves["experiment"] == e["experiment"]].sort_values("sparsity")
        ax.plot(c[x] / scale, c["fid"], marker="o", label=_label(e))
    extractors = ", ".join(sorted(rows["feature_extractor"].astype(str).unique()))
    if x == "remaining_pct":
        _sparsity_axis(ax, rows["remaining_pct"])
        ax.set_title("FID vs remaining weights across experiments (mean over eval seeds)")
    else:
        log_axis_plain(ax)
        ax.grid(True, which="both", alpha=0.3)
        ax.set_xlabel(f"multiply-accumulates per image forward ({unit}, kept weights only, log scale)")
        ax.set_title("FID vs compute across experiments (mean over eval seeds)")
    ax.set_ylabel(f"FID ({extractors} features; lower is better)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def _markdown(summary: pd.DataFrame, notes: list[str]) -> str:
    from .report import _macs_unit

    scale, unit = _macs_unit(summary["final_macs"])
    def cell(v: Any, spec: str = "") -> str:
        if v is None or (isinstance(v, float) and pd.isna(v)):
            return "–"
        return format(v, spec) if spec else str(v)

    header = ["experiment", "rev", "schedule", "rewind", "seeds", "extractor", "N", "rounds", "dense FID",
              "final sparsity (%)", "final FID", f"final MACs ({unit})", "sparsest within tolerance"]
    lines = ["# Experiments compared", "",
             f"{len(summary)} run(s) from `dvc exp show` (workspace, baseline commit, experiments); FID is the "
             "mean over each run's eval seeds.", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for _, s in summary.iterrows():
        within = "none" if pd.isna(s["sparsest_within_tol_round"]) else \
            f"round {int(s['sparsest_within_tol_round'])} ({100 * s['sparsest_within_tol_sparsity']:.1f}%, ΔFID ≤ {s['fid_tolerance']:g})"
        lines.append("| " + " | ".join([
            s["experiment"], s["rev"], s["schedule"], s["rewind"], s["seeds"], s["feature_extractor"],
            s["num_samples"], str(s["rounds"]), cell(s["dense_fid"], ".2f"), cell(100 * s["final_sparsity"], ".2f"),
            cell(s["final_fid"], ".2f"), cell(s["final_macs"] / scale, ".3f"), within]) + " |")
    if len(summary) == 1:
        lines += ["", "Only one run has eval metrics (no DVC experiments yet); run e.g. "
                      "`dvc exp run -S sparsity.schedule=layerwise` to add one."]
    if notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    lines += ["", "![FID vs sparsity](compare_fid_vs_sparsity.png)", "", "![FID vs MACs](compare_fid_vs_macs.png)", ""]
    return "\n".join(lines)


def _find_dvc_root(repo: Path) -> Optional[Path]:
    for d in [repo, *repo.parents]:
        if (d / ".dvc").is_dir():
            return d
    return None


def exp_show_json(repo: Path) -> list[dict]:
    """`dvc exp show --json` of the repository, run with this interpreter's DVC."""
    repo = Path(repo).resolve()
    if _find_dvc_root(repo) is None:
        raise ConfigError(f"{repo}: not inside a DVC repository (no .dvc/ here or above); "
                          "run `lth-diffusion report compare` from the project root")
    proc = subprocess.run([sys.executable, "-m", "dvc", "exp", "show", "--json"], cwd=repo,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise ConfigError(f"`dvc exp show --json` failed in {repo}: {last}")
    try:
        return json.loads(proc.stdout)
    except json.JSONDecodeError:
        raise ConfigError(f"`dvc exp show --json` in {repo} printed no JSON: {proc.stdout[:200]!r}") from None


def _default_tolerance(repo: Path) -> float:
    from .config import load_params

    try:
        return load_params(Path(repo) / "params.yaml").report.fid_tolerance
    except ConfigError:
        return DEFAULT_TOLERANCE


def compare(out_dir: Path = Path("reports/compare"), repo: Path = Path(".")) -> list[Path]:
    """Plots and tables comparing every DVC experiment's sparsity/FID/MACs curves."""
    rows, exps, notes = parse_exp_show(exp_show_json(repo))
    if rows.empty:
        raise ConfigError(f"{Path(repo).resolve()}: no run has artifacts/eval/s*/r*/metrics.json among its DVC "
                          "metrics; run the pipeline (`dvc repro`) and declare them as metrics in dvc.yaml")
    out_dir = Path(out_dir)
    summary = summary_table(rows, exps, _default_tolerance(repo))
    written = [
        save_figure(plot_compare(rows, summary, "remaining_pct"), out_dir / "compare_fid_vs_sparsity.png", dpi=110),
        save_figure(plot_compare(rows, summary, "macs"), out_dir / "compare_fid_vs_macs.png", dpi=110),
        save_text(summary.to_csv(index=False), out_dir / "compare.csv"),
        save_text(rows.to_csv(index=False), out_dir / "compare_rounds.csv"),
        save_text(_markdown(summary, notes), out_dir / "compare.md"),
    ]
    return written
