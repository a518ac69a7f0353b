import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline.config import ConfigError, load_params, parse_params

from conftest import TINY, merge

ROOT = Path(__file__).resolve().parents[1]


def error_for(over: dict) -> str:
    with pytest.raises(ConfigError) as exc:
        parse_params(merge(TINY, over))
    msg = str(exc.value)
    assert "\n" not in msg, "errors must be one line"
    return msg


def test_repository_params_are_valid():
    params = load_params(ROOT / "params.yaml")
    assert params.target_sparsity >= 0.90, "the default study must reach 90 % sparsity"
    assert len(params.imp.seeds) == 2


@pytest.mark.parametrize("over, must_contain", [
    ({"sparsity": {"rate": 1.5}}, ["sparsity.rate", "1.5", "less than 1"]),
    ({"train": {"steps": -3}}, ["train.steps", "-3", "greater than or equal to 1"]),
    ({"data": {"dataset": "imagenet"}}, ["data.dataset", "imagenet", "mnist5k", "cifar10"]),
    ({"sparsity": {"schedule": "magic"}}, ["sparsity.schedule", "magic", "uniform", "layerwise"]),
    ({"model": {"dim_mults": [1, 2, 2, 2]}, "data": {"image_size": 12}}, ["model.dim_mults", "divisible by 8"]),
    ({"train": {"stepz": 3}}, ["unknown key", "train.stepz", "steps"]),
    ({"bogus": {}}, ["unknown key", "bogus"]),
    ({"train": {"batch_size": "many"}}, ["train.batch_size", "many"]),
    ({"rewind": {"mode": "checkpoint", "step": 100}}, ["rewind.step", "train.steps"]),
    ({"imp": {"rounds": [{"k": 1, "prev": 0}, {"k": 3, "prev": 1}]}}, ["imp.rounds", "prev"]),
    ({"eval": {"kid_subset_size": 1000}}, ["kid_subset_size", "num_samples"]),
    ({"eval": {"seeds": [7]}}, ["eval.seeds", "imp.seeds"]),
])
def test_bad_values_name_key_value_and_allowed(over, must_contain):
    msg = error_for(over)
    for part in must_contain:
        assert part in msg, f"{part!r} missing from: {msg}"


def test_stage_stops_before_compute_with_one_line(tmp_path):
    raw = merge(TINY, {"sparsity": {"rate": 1.5}})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    proc = subprocess.run([sys.executable, "-m", "stages.init"], cwd=tmp_path, capture_output=True, text=True,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0, proc.stderr
    assert "sparsity.rate" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "artifacts").exists(), "nothing may be written on bad input"


def test_fingerprint_changes_with_recipe(tiny):
    a, b = tiny(), tiny(train={"lr": 5e-4})
    assert a.fingerprint("train") != b.fingerprint("train")
    assert a.fingerprint("data") == b.fingerprint("data")


def test_paper_params_file_is_valid():
    params = load_params(ROOT / "params" / "cifar10-paper.yaml")
    assert params.data.dataset == "cifar10" and params.model.dim == 64
    assert params.target_sparsity >= 0.9
