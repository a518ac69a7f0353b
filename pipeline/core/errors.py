"""The project's user-facing errors: bad params (`ConfigError`), unusable artifacts (`ArtifactError`:
one line naming the file, what is wrong, and the DVC stage that rebuilds it) and a training run
that turned non-finite (`NonFiniteError`).

`stage_for` is the one place that maps an artifact path back to the stage writing it; its patterns
come from `paths.py`'s layout, its names are those DVC gives `dvc.yaml`'s foreach/matrix
entries (`prune@1-round0` is seed 1, round k = 1: matrix items are named by their list index).
"""
from __future__ import annotations

import re
from pathlib import Path

from pipeline.core import paths

ROOT = paths.ROOT.name


class ConfigError(ValueError):
    """A params value that cannot be used; the message is one line meant for the user."""


class LaunchError(ValueError):
    """A runtime resource request (ranks, threads, devices) that cannot be met; one line naming the
    environment variable."""


class NonFiniteError(RuntimeError):
    """Training's loss or weights turned NaN/inf; str() names the step and the loss."""


# (pattern on the path relative to the artifacts root, from paths.py's layout; stage-name template)
_IN = "/.*"
_STAGES: tuple[tuple[str, str], ...] = (
    (paths.pattern("data", _IN), "prepare"),
    (paths.pattern("init", _IN), "init"),
    (paths.pattern("train", _IN, k=0), "dense@{seed}"),
    (paths.pattern("checkpoint", k=0), "dense@{seed}"),
    (paths.pattern("prune", _IN), "prune@{seed}-round{i}"),
    (paths.pattern("rewind", _IN), "rewind@{seed}-round{i}"),
    (paths.pattern("train", _IN), "retrain@{seed}-round{i}"),
    (paths.pattern("checkpoint"), "retrain@{seed}-round{i}"),
    (paths.pattern("features", _IN), "features"),
    (paths.pattern("reference", _IN), "reference"),
    (paths.pattern("control_eval", _IN), "eval_control@{kind}-{seed}-{k}"),
    (paths.pattern("control", _IN), "control@{kind}-{seed}-{k}"),
    (paths.pattern("eval", _IN, k=0), "eval_dense@{seed}"),
    (paths.pattern("eval", _IN), "eval@{seed}-round{i}"),
    (paths.pattern("layer_rates", _IN), "layer_rates"),
    (paths.pattern("similarity", _IN), "similarity"),
    (paths.pattern("budget_train", _IN, k=0), "dense_budget@{seed}"),
    (paths.pattern("budget_checkpoint", k=0), "dense_budget@{seed}"),
    (paths.pattern("budget_train", _IN), "retrain_budget@{seed}"),
    (paths.pattern("budget_checkpoint"), "retrain_budget@{seed}"),
    (paths.pattern("budget_eval", _IN), "eval_budget@{seed}"),
)


def stage_for(path: str | Path) -> str | None:
    """The DVC stage whose output `path` is (None when no stage writes it)."""
    parts = Path(path).as_posix().split("/")
    if ROOT not in parts:
        return None
    rel = "/".join(parts[len(parts) - 1 - parts[::-1].index(ROOT) + 1:])
    for pattern, template in _STAGES:
        m = re.fullmatch(pattern, rel)
        if m:
            fields = m.groupdict()
            if "k" in fields:
                fields["i"] = int(fields["k"]) - 1  # rounds form the chain k = 1, 2, ... (config.py)
            return template.format(**fields)
    return None


class ArtifactError(RuntimeError):
    """An input artifact that cannot be used; str() is the one line shown to the user."""

    def __init__(self, path: str | Path, problem: str):
        self.path, self.problem, self.stage = Path(path), problem, stage_for(path)
        fix = (f"re-run `dvc repro -f -s {self.stage}`" if self.stage
               else "restore or regenerate it")
        super().__init__(f"{self.path}: {problem}; {fix}")
