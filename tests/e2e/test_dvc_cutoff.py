"""Early cutoff on a tiny DVC project: a change reruns only what it touches, a forced re-run writes
byte-identical files, and controls sit beside the chain without ever changing it.

The tests share one project and run in file order, each starting from the state the previous one
committed.
"""
import hashlib

import pytest
import torch
import yaml

from conftest import TINY, merge
from dvc_project import DvcProject
from pipeline.evaluate.cost import save_compressed_ticket
from pipeline.core.io import save_torch
from pipeline.sparsity.masks import Mask

# files that may differ between two runs of the same stage: cache: false metrics nobody depends on
TIMING_ONLY = {"artifacts/features/features.json"}


def tree_md5(root, *, skip=("artifacts/checkpoints",)) -> dict[str, str]:
    """md5 of every artifact and report file, by path relative to the project."""
    out = {}
    for base in ("artifacts", "reports"):
        for path in sorted((root / base).rglob("*")):
            rel = path.relative_to(root).as_posix()
            if path.is_file() and path.name != ".gitignore" and not rel.startswith(skip):
                out[rel] = hashlib.md5(path.read_bytes()).hexdigest()
    return out


def set_params(project: DvcProject, **sections) -> None:
    path = project.path / "params.yaml"
    params = merge(yaml.safe_load(path.read_text()), sections)
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def is_control(stage: str) -> bool:
    return stage.startswith(("control@", "eval_control@"))


def test_torch_files_hold_the_same_bytes_whatever_their_name(tmp_path):
    """torch.save records the name it writes to inside the archive: a random temp name would
    make every save of the same tensors a different file."""
    obj = {"w": torch.arange(6.0).view(2, 3), "mask": torch.tensor([True, False])}
    a, b = save_torch(obj, tmp_path / "a" / "mask.pt"), save_torch(obj, tmp_path / "b" / "other.pt")
    assert a.read_bytes() == b.read_bytes()
    mask = Mask({"w": torch.tensor([[True, False, True], [False, True, True]])})
    obj = {"w": obj["w"] * mask["w"]}
    sizes = [save_compressed_ticket(obj, mask, tmp_path / name) for name in ("t1.bin", "t2.bin")]
    assert sizes[0] == sizes[1] and (tmp_path / "t1.bin").read_bytes() == (tmp_path / "t2.bin").read_bytes()


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    params = merge(TINY, {"controls": {"kinds": [], "rounds": [2]}})
    project = DvcProject(tmp_path_factory.mktemp("cutoff"), params)
    first = project.dvc("repro")
    assert not any(is_control(s) for s in project.ran(first.stdout)), "controls.kinds: [] runs none"
    project.commit("study without controls")
    return project


@pytest.mark.slow
def test_controls_rerun_only_control_stages_and_never_change_the_chain(project):
    chain = {p: h for p, h in tree_md5(project.path).items() if not p.startswith("reports/")}
    set_params(project, controls={"kinds": ["reinit", "random"]})
    out = project.dvc("repro")
    ran = project.ran(out.stdout)
    expected = {f"{stage}@{kind}-{seed}-2" for stage in ("control", "eval_control")
                for kind in ("reinit", "random") for seed in (1, 2)}
    assert ran == expected | {"report"}, ran ^ (expected | {"report"})
    after = tree_md5(project.path)
    assert {p: after[p] for p in chain} == chain, "a control changed an artifact of the chain"
    for kind in ("reinit", "random"):
        assert f"artifacts/controls/{kind}/s2/r2/train/model.pt" in after
        assert f"artifacts/eval/controls/{kind}/s1/r2/metrics.json" in after
    project.commit("controls")


@pytest.mark.slow
def test_forced_rerun_of_each_stage_type_writes_identical_bytes(project):
    stages = ["init", "dense@1", "prune@1-round0", "rewind@1-round0", "retrain@1-round1", "control@reinit-1-2",
              "control@random-2-2", "features", "reference", "layer_rates", "eval_dense@1", "eval@1-round1",
              "eval_control@random-1-2", "similarity", "report"]
    set_params(project, controls={"kinds": ["reinit", "random"]})  # already so after the test above
    project.dvc("repro")
    before = tree_md5(project.path)
    lock = (project.path / "dvc.lock").read_text()
    # no resuming: every forced training stage recomputes from its start weights
    for ckpt in (project.path / "artifacts" / "checkpoints").glob("*.pt"):
        ckpt.unlink()
    out = project.dvc("repro", "-f", "-s", *stages)
    assert project.ran(out.stdout) == set(stages), out.stdout
    after = tree_md5(project.path)
    changed = sorted(p for p in before if before[p] != after.get(p))
    assert set(changed) <= TIMING_ONLY, f"re-run on the same inputs changed {changed}"
    if not changed:
        assert (project.path / "dvc.lock").read_text() == lock
    again = project.dvc("repro")
    assert project.ran(again.stdout) == set(), again.stdout


@pytest.mark.slow
def test_similarity_strength_under_uniform_reruns_no_chain_stage(project):
    set_params(project, similarity={"strength": 0.5})
    out = project.dvc("repro")
    ran = project.ran(out.stdout)
    assert "layer_rates" in ran, ran
    assert ran <= {"layer_rates", "similarity", "report"}, f"{ran} re-ran"
    project.commit("similarity.strength 0.5")


@pytest.mark.slow
def test_one_more_round_runs_only_that_round_and_the_aggregates(project):
    rounds = TINY["imp"]["rounds"] + [{"k": 3, "prev": 2}]
    set_params(project, imp={"rounds": rounds})
    out = project.dvc("repro")
    ran = project.ran(out.stdout)
    new_round = {f"{stage}@{seed}-round2" for stage in ("prune", "rewind", "retrain") for seed in (1, 2)}
    # every IMP seed is evaluated (eval.seeds is gone), so both seeds get the new round's eval
    expected = new_round | {f"eval@{seed}-round2" for seed in (1, 2)} | {"similarity", "report"}
    assert ran == expected, f"unexpected: {ran - expected}, missing: {expected - ran}"
    project.commit("four rounds")
