"""Team workflows on the CPU: a shared DVC remote, queued sweeps, and the GPU smoke study's params.

One tiny baseline study (one IMP round) serves both DVC checks, which are slow on a small machine.
"""
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from conftest import TINY, merge
from dvc_project import DvcProject
from pipeline.app.params import load_params

ROOT = Path(__file__).resolve().parents[2]


def test_gpu_smoke_params_are_the_paper_unet_on_offline_digits():
    p = load_params(ROOT / "params" / "gpu-smoke.yaml")
    assert (p.data.dataset, p.data.download, p.data.image_size) == ("mnist5k", False, 32)
    assert (p.model.dim, p.model.dim_mults, p.model.num_res_blocks) == (64, (1, 2, 4, 8), 2)
    assert p.eval.feature_extractor == "classifier" and p.eval.inception_weights is None
    assert len(p.imp.seeds) == 2 and len(p.imp.rounds) == 3


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    root = tmp_path_factory.mktemp("team")
    (root / "project").mkdir()
    project = DvcProject(root / "project", merge(TINY, {"imp": {"rounds": [{"k": 1, "prev": 0}]}}))
    # as in this repository: the small `cache: false` metrics files are tracked by git
    (project.path / ".gitignore").write_text((ROOT / ".gitignore").read_text())
    project.dvc("repro")
    project.commit("baseline study")
    project.root = root
    return project


@pytest.mark.slow
def test_shared_remote_lets_a_fresh_clone_pull_instead_of_recomputing(baseline):
    remote, clone = baseline.root / "remote", baseline.root / "clone"
    baseline.dvc("remote", "add", "-d", "shared", str(remote))
    baseline.dvc("push")
    baseline.commit("shared DVC remote")
    baseline.run("git", "clone", "-q", str(baseline.path), str(clone))

    env = dict(baseline.env, PYTHONPATH=str(clone), LTH_NPROC_PER_NODE="2")  # ranks are not part of any hash

    def dvc(*args):
        proc = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=clone, env=env, capture_output=True,
                              text=True, timeout=600)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc.stdout

    dvc("pull")
    assert (clone / "artifacts" / "imp" / "s2" / "r1" / "train" / "model.pt").exists()
    out = dvc("repro")
    assert DvcProject.ran(out) == set(), out
    assert "up to date" in out


@pytest.mark.slow
def test_queued_sweep_runs_every_experiment_and_compare_shows_them(baseline):
    for rate in ("0.4", "0.7"):
        baseline.dvc("exp", "run", "--queue", "-S", f"sparsity.rate={rate}", "-n", f"rate-{rate.replace('.', '')}")
    run = baseline.dvc("exp", "run", "--run-all", "-j", "1")
    ran = DvcProject.ran(run.stdout)  # --run-all follows each experiment's log
    assert {"prune@1-round0", "retrain@2-round0", "eval@1-round0"} <= ran, run.stdout
    assert not ran & {"init", "dense@1", "dense@2", "features", "reference"}, "the baseline's run-cache serves them"
    baseline.run(sys.executable, "-m", "pipeline.app.cli", "report", "compare")
    shown = pd.read_csv(baseline.path / "reports" / "compare" / "compare.csv")
    assert {"rate-04", "rate-07"} <= set(shown["experiment"]), shown
