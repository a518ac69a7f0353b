"""The runs behind reports/compare/, kept in the repository so a clone can rebuild the report.

DVC experiments live in one clone's .git refs and vanish from the next; the compare report must not.
Every run the compare command reads from `dvc exp show` is written to runs/<name>/ beside the report:
rows.csv (its per-round eval metrics, ROUND_COLUMNS) and run.json (its params and report frontier,
EXP_COLUMNS), with runs/index.json listing the runs in order and the notes of the last gathering. The
report is then built from runs/ alone, whether the runs came from DVC just now or from a commit, so a
fresh clone (no experiments) regenerates the committed tables byte for byte.
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.core.config import ConfigError
from pipeline.core.io import save_json, save_text
from pipeline.report.exp_show import EXP_COLUMNS, ROUND_COLUMNS

_TEXT = ("experiment", "rev", "schedule", "rewind", "kind", "feature_extractor", "extractor_sha256")


def _dirname(name: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", str(name)).strip("._") or "run"
    return safe


def _plain(v: Any) -> Any:
    if isinstance(v, float) and math.isnan(v):
        return None
    if hasattr(v, "item"):  # numpy scalars
        return _plain(v.item())
    return v


def load_runs(runs_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """(rows, exps, notes) of the committed runs, in the index's order; empty frames without an index."""
    index_path = Path(runs_dir) / "index.json"
    if not index_path.exists():
        return pd.DataFrame(columns=ROUND_COLUMNS), pd.DataFrame(columns=EXP_COLUMNS), []
    index = json.loads(index_path.read_text())
    rows, exps = [], []
    for name in index["runs"]:
        d = Path(runs_dir) / _dirname(name)
        rows.append(pd.read_csv(d / "rows.csv", dtype={c: str for c in _TEXT}, keep_default_na=False,
                                na_values={c: ["", "nan", "NaN"] for c in ROUND_COLUMNS if c not in _TEXT}))
        exps.append(json.loads((d / "run.json").read_text()))
    r = pd.concat(rows, ignore_index=True)[ROUND_COLUMNS] if rows else pd.DataFrame(columns=ROUND_COLUMNS)
    e = pd.DataFrame(exps, columns=EXP_COLUMNS)
    e["margin"] = e["margin"].astype(float)
    return r, e, list(index.get("notes", []))


def save_runs(rows: pd.DataFrame, exps: pd.DataFrame, notes: list[str], runs_dir: Path) -> list[Path]:
    """Write (or overwrite) each run of `exps` under runs_dir/<name>/ and merge them into the index:
    runs already committed keep their place, new ones are appended."""
    runs_dir = Path(runs_dir)
    index_path = runs_dir / "index.json"
    old = json.loads(index_path.read_text())["runs"] if index_path.exists() else []
    names = [str(n) for n in exps["experiment"]]
    dirs = [_dirname(n) for n in old + [n for n in names if n not in old]]
    if len(set(dirs)) != len(dirs):
        raise ConfigError(f"run names {old + names} map to clashing folder names under {runs_dir}")
    written = []
    for _, e in exps.iterrows():
        d = runs_dir / _dirname(e["experiment"])
        mine = rows[rows["experiment"] == e["experiment"]][ROUND_COLUMNS]
        written.append(save_text(mine.to_csv(index=False), d / "rows.csv"))
        written.append(save_json({c: _plain(e[c]) for c in EXP_COLUMNS}, d / "run.json"))
    written.append(save_json({"runs": old + [n for n in names if n not in old], "notes": list(notes)}, index_path))
    return written


def runs_in_report(out_dir: Path, suffixes: list[str] | None = None) -> int:
    """How many runs the report now in out_dir was built from (rows of its compare*.csv tables)."""
    total = 0
    for path in sorted(Path(out_dir).glob("compare*.csv")):
        if path.name.startswith(("compare_rounds", "compare_paired")):
            continue
        total += len(pd.read_csv(path))
    return total


def check_not_fewer(out_dir: Path, n_new: int, force: bool) -> None:
    """Refuse to replace a report of more runs with one of fewer, unless forced."""
    n_old = runs_in_report(out_dir)
    if n_new < n_old and not force:
        raise ConfigError(f"{out_dir} was built from {n_old} runs and this build has {n_new}; "
                          "pass --force to overwrite it with fewer runs")
