"""DVC's views fit a terminal: reports/headline.json and every recipe of docs/views.md, run in a tiny
DVC repository with experiments (and `dvc dag` on this repository's own dvc.yaml)."""
from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline.report.headline import headline

ROOT = Path(__file__).resolve().parents[2]
WIDTH = 160
SHA = "c87ae4c6e042e3b791262c3141a3968c5e009dfd28e0effed4f0fb1fe64cfa67"


def _metrics(rate: float) -> dict:
    """reports/metrics.json's shape, with the long fields that made `dvc metrics show` unreadable."""
    return {"schedule": "uniform", "feature_extractor": "classifier", "extractor_sha256": SHA, "dense_fid": 17.201749843387535,
            "final_fid": 100.26645080828588, "final_sparsity": 0.989758743523316, "margin_fraction": 0.1,
            "frontier": {"margin": 1.7201749843387537, "status": "bracketed", "round": 2,
                         "sparsity": round(1 - (1 - rate) ** 2, 6), "sentence": "provisional: " + "x" * 300},
            "findings": []}


def _primary() -> dict:
    """The ticket-vs-dense row at its widest: a qualified verdict of the longest wording."""
    return {"claim": "winning tickets exist at ≥ 90 % sparsity (ticket vs dense)",
            "read_at": "round 3 (93.6 % prunable, 92.3 % of all weights), 3 seeds", "effect": 10.712345,
            "ci": [3.5512, 17.8734], "verdict": "inconclusive at this scale (provisional: dense baseline not converged)"}


def test_headline_holds_the_few_numbers_a_reader_compares():
    h = headline(_metrics(0.6), _primary())
    assert h == {"fid_dense": 17.2, "frontier_sparsity": 0.84, "effect": 10.71, "effect_lo": 3.55, "effect_hi": 17.87,
                 "at_sparsity": 0.936, "verdict": "inconclusive at this scale", "provisional": True}
    assert SHA not in json.dumps(h)  # the hash stays a plain field of metrics.json
    plain = headline(_metrics(0.6), dict(_primary(), verdict="supported"))
    assert plain["verdict"] == "supported" and plain["provisional"] is False
    assert headline(_metrics(0.6), None) == {"fid_dense": 17.2, "frontier_sparsity": 0.84}


def test_the_report_stage_declares_the_headline_first():
    stage = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["report"]
    first = stage["metrics"][0]
    assert (next(iter(first)) if isinstance(first, dict) else first) == "reports/headline.json"


MAKE = """import json, sys, yaml
from PIL import Image
sys.path.insert(0, {root!r})
sys.path.insert(0, {tests!r})
from pipeline.report.headline import headline
from test_views import _metrics, _primary
p = yaml.safe_load(open("params.yaml"))
rate = p["sparsity"]["rate"]
json.dump(_metrics(rate), open("reports/metrics.json", "w"))
json.dump(headline(_metrics(rate), _primary()), open("reports/headline.json", "w"))
Image.new("L", (64, 48), int(255 * rate)).save("reports/fid_vs_sparsity.png")
"""

DVC_YAML = {"stages": {"report": {
    "cmd": "python make.py", "deps": ["make.py"], "params": ["sparsity", "rewind"],
    "plots": [{"reports/fid_vs_sparsity.png": {"cache": False}}],
    "metrics": [{"reports/headline.json": {"cache": False}}, {"reports/metrics.json": {"cache": False}}]}}}


def _env() -> dict:
    return dict(os.environ, COLUMNS=str(WIDTH), PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
                GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@t")


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=300)


def _dvc(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return _run([sys.executable, "-m", "dvc", *args], cwd)


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    """A DVC repository whose one stage writes the report's two metrics files and a figure, with the
    baseline committed and two experiments."""
    if shutil.which("git") is None:
        pytest.skip("git not installed")
    root = tmp_path_factory.mktemp("views")
    (root / "reports").mkdir()
    (root / "make.py").write_text(MAKE.format(root=str(ROOT), tests=str(Path(__file__).parent)))
    (root / "params.yaml").write_text(yaml.safe_dump({"sparsity": {"schedule": "uniform", "rate": 0.6},
                                                      "rewind": {"mode": "checkpoint", "step": 120}}))
    (root / "dvc.yaml").write_text(yaml.safe_dump(DVC_YAML, sort_keys=False))
    for step in (["git", "init", "-q"], [sys.executable, "-m", "dvc", "init", "-q"], ["git", "add", "-A"],
                 ["git", "commit", "-qm", "init"], [sys.executable, "-m", "dvc", "repro", "-q"], ["git", "add", "-A"],
                 ["git", "commit", "-qm", "baseline"],
                 [sys.executable, "-m", "dvc", "exp", "run", "-q", "-n", "rate-50", "-S", "sparsity.rate=0.5"],
                 [sys.executable, "-m", "dvc", "exp", "run", "-q", "-n", "layerwise", "-S", "sparsity.schedule=layerwise"]):
        done = _run(step, root)
        assert done.returncode == 0, (step, done.stdout, done.stderr)
    return root


def _recipes() -> list[str]:
    text = (ROOT / "docs" / "views.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", text, re.S)
    return [ln.strip() for b in blocks for ln in b.splitlines() if ln.strip().startswith("dvc ")]


def test_docs_give_a_recipe_for_each_view():
    recipes = _recipes()
    for view in ("dvc metrics show", "dvc exp show", "dvc dag", "dvc plots show", "dvc plots diff"):
        assert any(r.startswith(view) for r in recipes), view


@pytest.mark.parametrize("recipe", _recipes())
def test_each_documented_recipe_runs_and_fits_160_columns(repo, recipe):
    args = shlex.split(recipe)[1:]
    # `dvc dag` is about this repository's own DAG; the rest about a run's reports and experiments
    cwd = ROOT if args[0] == "dag" else repo
    done = _dvc(args, cwd)
    assert done.returncode == 0, (recipe, done.stdout, done.stderr)
    lines = done.stdout.splitlines()
    assert lines or "-o" in args, recipe
    wide = max((len(ln) for ln in lines), default=0)
    assert wide <= WIDTH, f"{recipe}: {wide} columns\n{done.stdout}"
    assert "…" not in done.stdout, f"{recipe}: columns elided\n{done.stdout}"
    if args[:2] == ["metrics", "show"]:
        assert "fid_dense" in done.stdout and "inconclusive at this scale" in done.stdout
        assert SHA not in done.stdout
    if args[:2] == ["exp", "show"]:
        assert "rate-50" in done.stdout and "layerwise" in done.stdout
    if args[0] == "plots":
        page = (repo / args[args.index("-o") + 1] / "index.html").read_text()
        assert "<img" in page and "https:" not in page and "http:" not in page  # offline
    if args[0] == "dag" and "--md" not in args:
        assert 10 < len(lines) < 80  # one seed's chain, not the whole study
