"""One owner of the artifact layout (pipeline.core.paths): every path takes a root, and the patterns that
read a path back (the stage that wrote it, the run a metrics file belongs to) come from the same layout."""
from __future__ import annotations

import re
from pathlib import Path

from pipeline.core import paths
from pipeline.core.errors import stage_for
from pipeline.report.exp_show import CONTROL_METRICS, EVAL_METRICS
from pipeline.report.inputs import CONTROL_EVAL

DIRS = {"init": paths.init_dir(), "train": paths.train_dir(2, 3), "prune": paths.prune_dir(2, 3),
        "rewind": paths.rewind_dir(2, 3), "checkpoint": paths.checkpoint_path(2, 3), "eval": paths.eval_dir(2, 3),
        "features": paths.features_dir(), "reference": paths.reference_dir(),
        "control": paths.control_dir("reinit", 2, 3), "control_eval": paths.control_eval_dir("reinit", 2, 3),
        "control_checkpoint": paths.control_checkpoint_path("reinit", 2, 3), "similarity": paths.similarity_dir(),
        "budget_train": paths.budget_train_dir(2, 3), "budget_eval": paths.budget_eval_dir(2, 3),
        "budget_checkpoint": paths.budget_checkpoint_path(2, 3)}


def test_every_path_moves_with_its_root():
    root = Path("/elsewhere/run")
    assert paths.eval_dir(2, 3, root) == root / paths.eval_dir(2, 3).relative_to(paths.ROOT)
    assert paths.control_eval_dir("random", 1, 2, root) == root / "eval/controls/random/s1/r2"
    assert paths.layer_rates_path(root) == root / "layer_rates/rates.json"
    assert paths.train_dir(1, 0) == Path("artifacts/imp/s1/r0/train")  # the default root is the stages'


def test_each_pattern_reads_its_own_path_back():
    for name, path in DIRS.items():
        m = re.fullmatch(paths.pattern(name), path.relative_to(paths.ROOT).as_posix())
        assert m, name
        assert {k: v for k, v in m.groupdict().items()} == {k: v for k, v in
                                                          {"seed": "2", "k": "3", "kind": "reinit"}.items()
                                                          if "{" + k + "}" in paths.LAYOUT[name]}


def test_the_readers_follow_the_layout():
    assert stage_for(paths.train_dir(1, 0, Path("/x/artifacts")) / "model.pt") == "dense@1"
    assert stage_for(paths.train_dir(1, 2) / "model.pt") == "retrain@1-round1"
    assert stage_for(paths.control_eval_dir("reinit", 1, 2) / "metrics.json") == "eval_control@reinit-1-2"
    assert stage_for(paths.eval_dir(3, 0) / "metrics.json") == "eval_dense@3"
    assert stage_for(paths.budget_train_dir(2, 0) / "rewind.pt") == "dense_budget@2"
    assert stage_for(paths.budget_checkpoint_path(2, 0)) == "dense_budget@2"
    assert stage_for(paths.budget_train_dir(2, 3) / "model.pt") == "retrain_budget@2"
    assert stage_for(paths.budget_eval_dir(2, 3) / "metrics.json") == "eval_budget@2"
    assert not EVAL_METRICS.search((paths.budget_eval_dir(2, 3) / "metrics.json").as_posix())
    assert EVAL_METRICS.search((paths.eval_dir(2, 3) / "metrics.json").as_posix())[2] == "3"
    m = CONTROL_METRICS.search("repo/" + (paths.control_eval_dir("random", 2, 3) / "metrics.json").as_posix())
    assert (m[1], m[2], m[3]) == ("random", "2", "3")
    assert not EVAL_METRICS.search((paths.control_eval_dir("random", 2, 3) / "metrics.json").as_posix())
    rel = paths.control_eval_dir("random", 2, 3, Path()) / "metrics.json"
    assert CONTROL_EVAL.fullmatch(rel.as_posix())[1] == "random"
