"""`dvc exp show --json` read into tables: one row per eval metrics file of every run.

DVC reads each experiment's params and its eval metrics files (declared as DVC metrics,
`cache: false`) from the experiment's commit, so no experiment has to be checked out. The JSON
walk is the pure function `parse_exp_show`; main rounds and controls are told apart by path.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Optional

import pandas as pd

from pipeline.core import paths
from pipeline.core.config import ConfigError

# where a run's metrics file sits in the repository, anywhere in a path DVC names
_UNDER_ROOT, _METRICS = r"(?:^|/)" + re.escape(paths.ROOT.name) + "/", r"/metrics\.json$"
# artifacts/eval/s{seed}/r{k}/metrics.json: the main run's per-round metrics
EVAL_METRICS = re.compile(_UNDER_ROOT + paths.pattern("eval", _METRICS))
# artifacts/eval/controls/{kind}/s{seed}/r{k}/metrics.json: controls beside the chain, never a main round
CONTROL_METRICS = re.compile(_UNDER_ROOT + paths.pattern("control_eval", _METRICS))
ROUND_COLUMNS = ["experiment", "rev", "schedule", "rewind", "kind", "seed", "round", "sparsity", "remaining_pct",
                 "fid", "fid_std", "fid_ci_low", "fid_ci_high", "fid_inf", "kid_mean", "macs", "storage_bytes",
                 "feature_extractor", "extractor_sha256", "num_samples"]
EXP_COLUMNS = ["experiment", "rev", "schedule", "rewind", "margin", "frontier", "dense_converged"]
UNHASHED = "?"  # metrics written before extractor_sha256 existed


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


def _eval_files(metrics: dict) -> dict[tuple[str, int, int], dict]:
    """{(kind, seed, round): metrics} of one entry's DVC metrics: main rounds and controls apart."""
    out = {}
    for path, content in metrics.items():
        if not (isinstance(content, dict) and isinstance(content.get("data"), dict)):
            continue
        if m := CONTROL_METRICS.search(path):
            out[(m[1], int(m[2]), int(m[3]))] = content["data"]
        elif m := EVAL_METRICS.search(path):
            k = int(m[2])
            out[("dense" if k == 0 else "ticket", int(m[1]), k)] = content["data"]
    return out


def _row(name: str, rev: str, schedule: str, rewind: str, kind: str, seed: int, k: int, m: dict) -> dict:
    sparsity = float(m.get("sparsity", 0.0))
    ci = m.get("fid_ci") if isinstance(m.get("fid_ci"), list) and len(m["fid_ci"]) == 2 else [None, None]
    return {"experiment": name, "rev": rev, "schedule": schedule, "rewind": rewind, "kind": str(m.get("kind") or kind),
            "seed": seed, "round": k, "sparsity": sparsity, "remaining_pct": 100.0 * (1.0 - sparsity),
            "fid": _num(m.get("fid")), "fid_std": _num(m.get("fid_std")), "fid_ci_low": _num(ci[0]),
            "fid_ci_high": _num(ci[1]), "fid_inf": _num(m.get("fid_inf")), "kid_mean": _num(m.get("kid_mean")),
            "macs": _num(m.get("macs")), "storage_bytes": _num(m.get("storage_bytes")),
            "feature_extractor": str(m.get("feature_extractor", "?")),
            "extractor_sha256": str(m.get("extractor_sha256") or UNHASHED),
            "num_samples": int(m.get("num_samples", 0))}


def parse_exp_show(exp_show: list[dict]) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """From `dvc exp show --json`: (per-round rows, per-experiment params, notes).

    Rows have ROUND_COLUMNS (`kind`: dense, ticket, or a control kind); the params frame has
    EXP_COLUMNS (`frontier`: the report's sparsest non-inferior ticket per seed, from
    reports/metrics.json). Entries without eval metrics, with errors, or
    identical to another entry (the workspace right after `dvc exp run` equals that experiment) are
    left out, each with a note.
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
        evals = _eval_files(metrics)
        if not any(kind in ("dense", "ticket") for kind, _, _ in evals):
            notes.append(f"{name}: skipped, no artifacts/eval/s*/r*/metrics.json among its DVC metrics.")
            continue
        key = json.dumps({"params": params, "metrics": metrics}, sort_keys=True, default=str)
        if key in seen:
            notes.append(f"{name}: identical params and metrics to {seen[key]}, shown once as {seen[key]}.")
            continue
        seen[key] = name
        pruned = [m for (kind, s, k), m in sorted(evals.items()) if kind == "ticket"]
        schedule = _get(params, "sparsity", "schedule") or (pruned[0].get("schedule") if pruned else None) or "?"
        rewind = _get(params, "rewind", "mode") or (pruned[0].get("rewind") if pruned else None) or "?"
        margin = _get(params, "report", "margin")
        rev = str(entry.get("rev", ""))
        rev = rev if rev == "workspace" else rev[:7]
        report = next((c.get("data") for path, c in metrics.items()
                       if path.endswith("reports/metrics.json") and isinstance(c, dict)), None) or {}
        exps.append({"experiment": name, "rev": rev, "schedule": schedule, "rewind": rewind,
                     "margin": float(margin) if margin is not None else float("nan"),
                     "frontier": report.get("frontier"), "dense_converged": report.get("dense_converged")})
        for (kind, seed, k), m in sorted(evals.items(), key=lambda item: (item[0][0] not in ("dense", "ticket"), item[0])):
            rows.append(_row(name, rev, schedule, rewind, kind, seed, k, m))
    return (pd.DataFrame(rows, columns=ROUND_COLUMNS),
            pd.DataFrame(exps, columns=EXP_COLUMNS), notes)


def _num(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")


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
