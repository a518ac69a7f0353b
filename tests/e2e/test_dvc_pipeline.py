"""The study as DVC runs it: every stage, caching, and schedule experiments that reuse dense training."""
import json
import statistics

import pytest
import torch
import yaml

from conftest import TINY, merge
from dvc_project import DvcProject
from pipeline.app.params import parse_params
from pipeline.core.io import load_torch
from pipeline.sparsity.masks import Mask
from pipeline.sparsity.pruning import prune_round

UPSTREAM = {"init", "dense@1", "dense@2", "features", "reference", "layer_rates", "eval_dense@1"}


def mask_report(root, seed, k):
    return json.loads((root / "artifacts" / "imp" / f"s{seed}" / f"r{k}" / "prune" / "mask.json").read_text())


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    path = tmp_path_factory.mktemp("study")
    params = merge(TINY, {"sparsity": {"rate": 0.6}})
    project = DvcProject(path, params)
    project.first = project.dvc("repro")
    project.commit("baseline study")
    return project


@pytest.mark.slow
def test_repro_runs_every_stage_and_writes_the_report(project):
    ran = project.ran(project.first.stdout)
    expected = UPSTREAM | {f"{s}@{seed}-round{i}" for s in ("prune", "rewind", "retrain")
                           for seed in (1, 2) for i in (0, 1)} | {"eval@1-round0", "eval@1-round1",
                                                                  "similarity", "report"}
    assert expected <= ran, expected - ran
    root = project.path
    for k in (0, 1, 2):
        metrics = json.loads((root / "artifacts" / "eval" / "s1" / f"r{k}" / "metrics.json").read_text())
        assert metrics["round"] == k and metrics["fid"] >= 0
    assert (root / "reports" / "index.html").exists() and (root / "reports" / "summary.md").exists()
    shown = project.dvc("metrics", "show", "--json").stdout
    assert "artifacts/eval/s1/r2/metrics.json" in shown and '"fid"' in shown


def same_mask(a: Mask, b: Mask) -> bool:
    return set(a) == set(b) and all(torch.equal(a[n], b[n]) for n in a)


@pytest.mark.slow
def test_masks_chain_across_rounds_to_the_target(project):
    """Round k prunes round k-1's retrained weights under round k-1's mask, not the weights it was
    rewound to nor the dense ones."""
    r1, r2 = mask_report(project.path, 1, 1), mask_report(project.path, 1, 2)
    assert r1["kept"] > r2["kept"]
    assert abs(r2["sparsity"] - (1 - 0.4**2)) < 0.01
    params = parse_params(yaml.safe_load((project.path / "params.yaml").read_text()))
    imp = project.path / "artifacts" / "imp"

    for seed in (1, 2):
        ticket = load_torch(imp / f"s{seed}" / "r1" / "train" / "model.pt")
        prev = Mask.from_state_dict(ticket["mask"])
        assert same_mask(prev, Mask.from_state_dict(load_torch(imp / f"s{seed}" / "r1" / "prune" / "mask.pt")))
        saved = Mask.from_state_dict(load_torch(imp / f"s{seed}" / "r2" / "prune" / "mask.pt"))

        def prune(weights):
            return prune_round(weights, prev, params.sparsity.schedule, params.sparsity.rate)

        assert same_mask(prune(ticket["model"]), saved), f"seed {seed}: round 2 = prune(round 1's retrained weights)"
        rewound = load_torch(imp / f"s{seed}" / "r1" / "rewind" / "weights.pt")
        dense = load_torch(imp / f"s{seed}" / "r0" / "train" / "model.pt")["model"]
        assert not same_mask(prune(rewound), saved), "the rewound weights give another mask"
        assert not same_mask(prune(dense), saved), "the dense weights give another mask"


@pytest.mark.slow
def test_second_repro_does_nothing(project):
    again = project.dvc("repro")
    assert project.ran(again.stdout) == set(), again.stdout
    assert "up to date" in again.stdout


@pytest.mark.slow
# one schedule is enough to prove the DAG property (every schedule's prune stage is the same stage);
# `global` itself is checked against torch.nn.utils.prune in test_masks_pruning
@pytest.mark.parametrize("schedule", ["layerwise"])
def test_schedule_experiment_reuses_dense_and_reruns_the_chain(project, schedule):
    uniform = {(s, k): mask_report(project.path, s, k) for s in (1, 2) for k in (1, 2)}
    out = project.dvc("exp", "run", "-S", f"sparsity.schedule={schedule}")
    ran = project.ran(out.stdout)
    assert not (ran & UPSTREAM), f"{ran & UPSTREAM} re-ran"
    for stage in ("init", "dense@1", "dense@2"):
        assert f"Stage '{stage}' didn't change" in out.stdout
    assert {"prune@1-round0", "retrain@2-round1", "eval@1-round1"} <= ran
    for (s, k), before in uniform.items():
        after = mask_report(project.path, s, k)
        assert after["schedule"] == schedule
        assert after["kept"] == before["kept"], "schedules are compared at equal global sparsity"
    spread = statistics.pstdev(v["sparsity"] for v in mask_report(project.path, 1, 2)["layers"].values())
    uniform_spread = statistics.pstdev(v["sparsity"] for v in uniform[(1, 2)]["layers"].values())
    assert spread > 2 * uniform_spread + 0.01, "per-layer sparsities differ by layer"
    project.run("git", "checkout", "-q", "--", "params.yaml", "dvc.lock")
    project.dvc("checkout", "-q", check=False)


@pytest.mark.slow
@pytest.mark.parametrize("change", ["sparsity.schedule=global", "sparsity.schedule=lamp",
                                    "sparsity.schedule=random", "rewind.mode=reinit", "rewind.mode=init"])
def test_schedule_and_rewind_changes_leave_dense_training_cached(project, change):
    """What DVC would run after a change (a dry run: nothing is computed)."""
    params_file = project.path / "params.yaml"
    original = params_file.read_text()
    key, value = change.split("=")
    section, name = key.split(".")
    text = original.replace(f"  {name}: uniform", f"  {name}: {value}") if section == "sparsity" \
        else original.replace("  mode: checkpoint", f"  mode: {value}")
    assert text != original
    params_file.write_text(text)
    try:
        out = project.dvc("repro", "--dry")
    finally:
        params_file.write_text(original)
    would_run = project.ran(out.stdout)
    assert not (would_run & UPSTREAM), would_run & UPSTREAM
    expected = {"rewind@1-round0", "retrain@1-round0"} if section == "rewind" else {"prune@1-round0"}
    assert expected <= would_run, would_run
