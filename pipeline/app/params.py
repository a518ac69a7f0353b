"""The params every stage and command runs under: the typed config of `pipeline.core.config`, plus
the rules that need the U-Net's layer shapes (`pipeline.sparsity.rules`). Use these two functions,
not the core ones, wherever a run starts."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.core import config
from pipeline.core.config import Params
from pipeline.sparsity.rules import check_prunable


def parse_params(raw: dict[str, Any] | None) -> Params:
    """Validate a params mapping; ConfigError (one line) on the first problem."""
    params = config.parse_params(raw)
    check_prunable(params)
    return params


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate a params file; ConfigError (one line) on the first problem."""
    params = config.load_params(path)
    check_prunable(params)
    return params
