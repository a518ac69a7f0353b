"""The project's user-facing errors: bad params (`ConfigError`), unusable artifacts (`ArtifactError`:
one line naming the file, what is wrong, and the DVC stage that rebuilds it) and a training run
that turned non-finite (`NonFiniteError`).

`stage_for` is the one place that maps an artifact path back to the stage writing it; it mirrors
the path functions of `paths.py` and the stage names DVC gives `dvc.yaml`'s foreach/matrix
entries (`prune@1-round0` is seed 1, round k = 1: matrix items are named by their list index).
"""
from __future__ import annotations

import re
from pathlib import Path

ROOT = "artifacts"


class ConfigError(ValueError):
    """A params value that cannot be used; the message is one line meant for the user."""


class LaunchError(ValueError):
    """A runtime resource request (ranks, threads, devices) that cannot be met; one line naming the
    environment variable."""


class NonFiniteError(RuntimeError):
    """Training's loss or weights turned NaN/inf; str() names the step and the loss."""

# (pattern on the path relative to the repository root, stage-name template)
_STAGES: tuple[tuple[str, str], ...] = (
    (r"init/.*", "init"),
    (r"imp/s(?P<seed>\d+)/r0/train/.*", "dense@{seed}"),
    (r"checkpoints/s(?P<seed>\d+)-r0\.pt", "dense@{seed}"),
    (r"imp/s(?P<seed>\d+)/r(?P<k>\d+)/prune/.*", "prune@{seed}-round{i}"),
    (r"imp/s(?P<seed>\d+)/r(?P<k>\d+)/rewind/.*", "rewind@{seed}-round{i}"),
    (r"imp/s(?P<seed>\d+)/r(?P<k>\d+)/train/.*", "retrain@{seed}-round{i}"),
    (r"checkpoints/s(?P<seed>\d+)-r(?P<k>\d+)\.pt", "retrain@{seed}-round{i}"),
    (r"features/.*", "features"),
    (r"reference/.*", "reference"),
    (r"eval/controls/(?P<kind>\w+)/s(?P<seed>\d+)/r(?P<k>\d+)/.*", "eval_control@{kind}-{seed}-{k}"),
    (r"controls/(?P<kind>\w+)/s(?P<seed>\d+)/r(?P<k>\d+)/.*", "control@{kind}-{seed}-{k}"),
    (r"eval/s(?P<seed>\d+)/r0/.*", "eval_dense@{seed}"),
    (r"eval/s(?P<seed>\d+)/r(?P<k>\d+)/.*", "eval@{seed}-round{i}"),
    (r"layer_rates/.*", "layer_rates"),
    (r"similarity/.*", "similarity"),
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
