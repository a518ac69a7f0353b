"""dvc.yaml's code deps are exactly each stage's import closure, so a code change re-runs exactly
the stages whose code it touches."""
from __future__ import annotations

import shutil
from pathlib import Path

from pipeline.app import deps as D

ROOT = Path(__file__).resolve().parents[2]


def test_dvc_yaml_code_deps_are_the_import_closures():
    diff = D.differences(ROOT)
    assert diff == {}, f"run `lth-diffusion deps --write`: {diff}"


def test_every_stage_runs_its_own_module():
    modules = D.stage_modules(ROOT)
    assert set(modules) == set(D.declared_code_deps(ROOT))
    for stage, module in modules.items():
        assert module == f"stages.{stage}", f"stage {stage} runs {module}, not stages/{stage}.py"


def test_closure_follows_lazy_and_package_imports():
    init = D.closure("stages.init", ROOT)
    assert "stages/init.py" in init and "pipeline/sparsity/tickets.py" in init
    assert "pipeline/__init__.py" in init and "pipeline/sparsity/__init__.py" in init
    # the training loop is not init's code: editing it must not re-run init
    assert "pipeline/train/loop.py" not in init
    # the report draws similarity figures through a function-level import
    assert "pipeline/similarity/plots.py" in D.closure("stages.report", ROOT)


def test_imports_for_type_annotations_only_are_not_deps(tmp_path):
    (tmp_path / "pipeline").mkdir()
    for name in ("__init__", "a", "b", "c"):
        (tmp_path / "pipeline" / f"{name}.py").write_text("")
    (tmp_path / "pipeline" / "m.py").write_text(
        "from typing import TYPE_CHECKING\nimport typing\nfrom pipeline import a\n"
        "if TYPE_CHECKING:\n    from pipeline import b\nelse:\n    from pipeline import c\n"
        "if typing.TYPE_CHECKING:\n    import pipeline.b\n")
    assert D.imports_of(tmp_path / "pipeline" / "m.py", tmp_path) == {"pipeline", "pipeline.a", "pipeline.c"}
    # the similarity stage words its claims with the report's text, which names the frontier's types only
    sim = D.closure("stages.similarity", ROOT)
    assert "pipeline/report/text.py" in sim and "pipeline/stats/frontier.py" not in sim


def _copy_project(tmp_path: Path) -> Path:
    for name in ("pipeline", "stages"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__", "assets"))
    shutil.copy(ROOT / "dvc.yaml", tmp_path / "dvc.yaml")
    return tmp_path


def test_a_missing_or_stale_dep_is_caught_and_write_fixes_it(tmp_path):
    root = _copy_project(tmp_path)
    text = (root / "dvc.yaml").read_text()
    # drop init's own config dep, and list a module it never imports
    init_block = text.index("  init:")
    broken = text[:init_block] + text[init_block:].replace("      - pipeline/core/config.py\n",
                                                           "      - pipeline/train/loop.py\n", 1)
    (root / "dvc.yaml").write_text(broken)
    missing, extra = D.differences(root)["init"]
    assert missing == ["pipeline/core/config.py"] and extra == ["pipeline/train/loop.py"]
    # a new import in a stage's module shows up as a missing dep
    (root / "stages" / "prune.py").write_text((root / "stages" / "prune.py").read_text()
                                              + "\nfrom pipeline.evaluate import cost  # noqa\n")
    assert "pipeline/evaluate/cost.py" in D.differences(root)["prune"][0]
    assert set(D.write(root)) >= {"init", "prune"}
    assert D.differences(root) == {}
    assert (root / "dvc.yaml").read_text().count("artifacts/init/theta0.pt") == text.count("artifacts/init/theta0.pt")
