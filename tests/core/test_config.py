import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline.app.params import load_params, parse_params
from pipeline.core.config import ConfigError

from conftest import TINY, merge

ROOT = Path(__file__).resolve().parents[2]


def error_for(over: dict) -> str:
    with pytest.raises(ConfigError) as exc:
        parse_params(merge(TINY, over))
    msg = str(exc.value)
    assert "\n" not in msg, "errors must be one line"
    return msg


def test_repository_params_are_valid():
    params = load_params(ROOT / "params.yaml")
    assert params.target_sparsity >= 0.90, "the default study must reach 90 % sparsity"
    assert len(params.imp.seeds) >= 2  # the first two are compared; all are replicates


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
    ({"eval": {"seeds": [7]}}, ["unknown key", "eval.seeds"]),  # every IMP seed is evaluated
    # rules whose breach used to surface only hours into `dvc repro`
    ({"imp": {"seeds": [1]}}, ["imp.seeds", "two seeds", "similarity"]),
    ({"model": {"attn_resolutions": [4, 5]}}, ["model.attn_resolutions", "[5]", "[8, 4]"]),
    ({"eval": {"sampling_steps": 101}}, ["eval.sampling_steps", "101", "diffusion.timesteps (100)"]),
    ({"sparsity": {"include": ["*.bias"]}}, ["sparsity.include", "no conv/linear weight is prunable"]),
    ({"sparsity": {"exclude": ["*"]}}, ["sparsity.include", "sparsity.exclude ['*']"]),
    ({"sparsity": {"include": ["down.*"], "exclude": ["down.*"]}}, ["sparsity.include", "no conv/linear"]),
    ({"similarity": {"max_layer_rate": 0.3}}, ["similarity.max_layer_rate", "0.3", "too low", "round 1"]),
    ({"sparsity": {"schedule": "layerwise", "rate": 0.6}, "similarity": {"max_layer_rate": 0.6}},
     ["similarity.max_layer_rate", "too low"]),
    ({"features": {"holdout": 5000}}, ["features.holdout", "4500 training images of mnist5k"]),
    ({"imp": {"seeds": []}}, ["imp.seeds", "non-empty"]),
    ({"imp": {"seeds": [1, 1]}}, ["imp.seeds", "distinct"]),
    ({"imp": {"rounds": [{"k": 1, "prev": 1}]}}, ["imp.rounds", "prev"]),
    ({"model": {"dim": 100000}}, ["model.dim", "less than or equal to 1024"]),
    ({"model": {"dim_mults": [1, 2, 3, 4, 5, 6, 7, 8, 9]}}, ["model.dim_mults", "1 to 8"]),
    ({"data": {"image_size": 10}, "model": {"dim_mults": [1, 2, 2]}}, ["model.dim_mults", "divisible by 4"]),
    # the budget check's seeds and round name stages of the chain (their masks and T-budget evals)
    ({"budget": {"seeds": [1, 7]}}, ["budget.seeds", "[1, 7]", "imp.seeds [1, 2]", "[] (no budget check)"]),
    ({"budget": {"seeds": [1]}}, ["budget.seeds", "at least two seeds"]),
    ({"budget": {"seeds": [1, 1]}}, ["budget.seeds", "distinct"]),
    ({"budget": {"seeds": [1, 2], "round": 3}}, ["budget.round", "3", "imp.rounds [1, 2]", "primary round"]),
    ({"budget": {"factor": 1}}, ["budget.factor", "greater than or equal to 2"]),
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


def test_cross_rules_accept_their_boundaries():
    ok = parse_params(merge(TINY, {"eval": {"sampling_steps": 100},
                                   "model": {"attn_resolutions": []}, "features": {"holdout": 4499},
                                   "similarity": {"max_layer_rate": 0.6}}))
    assert ok.level_resolutions() == [8, 4]


def _check(args, cwd=None):
    from typer.testing import CliRunner

    from pipeline.app.cli import app

    old = Path.cwd()
    try:
        if cwd:
            os.chdir(cwd)
        return CliRunner().invoke(app, ["check", *args])
    finally:
        os.chdir(old)


def test_check_rejects_patterns_leaving_nothing_prunable_with_one_line(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(merge(TINY, {"sparsity": {"include": ["*.nothing"]}})))
    result = _check([str(path)])
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit), result.exception  # no crash
    assert result.stderr.strip().count("\n") == 0 and "sparsity.include" in result.stderr, result.stderr


def _git(cwd, *args):
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                   env={**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid",
                        "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid"})


def test_check_warns_on_a_detached_head_and_says_how_to_get_back(tmp_path):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(TINY))
    _git(tmp_path, "init", "-q", "-b", "main")
    _git(tmp_path, "add", "params.yaml")
    _git(tmp_path, "commit", "-q", "-m", "study")
    on_branch = _check([], cwd=tmp_path)
    assert on_branch.exit_code == 0 and on_branch.stderr == ""

    _git(tmp_path, "checkout", "-q", "--detach")  # what an interrupted `dvc exp run` leaves
    detached = _check([], cwd=tmp_path)
    assert detached.exit_code == 0 and "params.yaml: ok" in detached.stdout
    warning = detached.stderr.strip()
    assert warning.count("\n") == 0 and warning.startswith("warning: git HEAD is detached")
    for hint in ("git checkout main", "dvc exp apply", "dvc exp branch"):
        assert hint in warning, warning

    _git(tmp_path, "branch", "study")  # dvc exp run records the branch it started from
    _git(tmp_path, "symbolic-ref", "refs/exps/exec/EXEC_BRANCH", "refs/heads/study")
    assert "git checkout study" in _check([], cwd=tmp_path).stderr


def test_missing_inception_weights_file_is_caught_when_loading(tmp_path):
    path = tmp_path / "params.yaml"
    raw = merge(TINY, {"eval": {"feature_extractor": "inception-v3-compat", "inception_weights": "nope/pt.pth"}})
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=r"eval.inception_weights = 'nope/pt.pth' is invalid: no such file"):
        load_params(path)
    weights = tmp_path / "pt.pth"
    weights.write_bytes(b"x")
    path.write_text(yaml.safe_dump(merge(raw, {"eval": {"inception_weights": str(weights)}})))
    assert load_params(path).eval.inception_weights == str(weights)


def test_typed_defaults_are_params_yaml():
    """params.yaml is the one source of defaults: the typed config's own defaults must equal it."""
    from pipeline.core.config import Params

    assert Params().model_dump(mode="json") == load_params(ROOT / "params.yaml").model_dump(mode="json")


def test_start_step_rule():
    from pipeline.core.config import parse_params as parse

    for mode, start in (("checkpoint", 120), ("init", 0), ("reinit", 0)):
        p = parse({"rewind": {"mode": mode, "step": 120}})
        assert p.start_step() == start and p.retrain_steps() == p.train.steps - start
    assert parse({}).start_step("init") == 0 and parse({"rewind": {"mode": "init"}}).start_step("checkpoint") == 120


def test_check_says_when_an_image_folder_holds_no_images_and_how_to_get_them(tmp_path):
    (tmp_path / "empty").mkdir()
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(merge(TINY, {"data": {"dataset": "imagefolder", "root": str(tmp_path / "empty"),
                                                         "channels": 3}})))
    result = _check([str(path)])
    assert result.exit_code == 2, result.stdout
    line = result.stderr.strip()
    assert "\n" not in line and "holds no images" in line and "tar xzf" in line, line


def test_every_preset_parses_and_names_every_param_dvc_reads(tmp_path):
    """A preset is copied over params.yaml: DVC needs every key a stage declares to be in it."""
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    declared = {p for s in stages.values() for p in s.get("do", s).get("params", []) if isinstance(p, str)}
    for preset in sorted((ROOT / "params").glob("*.yaml")):
        load_params(preset)
        raw = yaml.safe_load(preset.read_text())
        for key in declared:
            node = raw
            for part in key.split("."):
                assert isinstance(node, dict) and part in node, f"{preset.name} lacks {key}"
                node = node[part]


def test_primary_claim_window_is_validated():
    p = parse_params(merge(TINY, {"report": {"primary_sparsity": 0.9, "primary_tolerance": 0.005}}))
    assert (p.report.primary_sparsity, p.report.primary_tolerance) == (0.9, 0.005)
    with pytest.raises(Exception, match="primary"):
        parse_params(merge(TINY, {"report": {"primary_sparsity": 0.99, "primary_tolerance": 0.02}}))
    with pytest.raises(Exception, match="primary_tolerance"):
        parse_params(merge(TINY, {"report": {"primary_tolerance": 0.0}}))


def test_budget_off_needs_no_round_and_at_budget_stretches_only_the_steps(tiny):
    off = tiny(budget={"seeds": [], "round": 9})
    assert not off.budget.enabled
    params = tiny(budget={"seeds": [1, 2], "round": 2, "factor": 3})
    long = params.at_budget()
    assert long.train.steps == 3 * params.train.steps and params.train.steps == 6
    assert long.train.model_dump(exclude={"steps"}) == params.train.model_dump(exclude={"steps"})
    assert long.rewind == params.rewind and long.model == params.model and long.data == params.data
    assert long.train.check_steps() == (9, 14, 18)  # the convergence checks move with the budget
    # a distinct training run: its checkpoints never resume the T-budget run's
    assert long.fingerprint("train") != params.fingerprint("train")
