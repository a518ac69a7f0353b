"""The params every stage and command runs under: the typed config of `pipeline.core.config`, plus
the rules that need the U-Net's layer shapes (`pipeline.sparsity.rules`) and, for `inception-fid`, the
weights file's sha256. Use these two functions,
not the core ones, wherever a run starts."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.core import config
from pipeline.core.config import Params
from pipeline.evaluate.inception_weights import INCEPTION_FID, verify_weights
from pipeline.sparsity.rules import check_prunable


def _check(params: Params) -> Params:
    check_prunable(params)
    if params.eval.feature_extractor == INCEPTION_FID:
        verify_weights()  # installed, and the pinned file (hashed once per process)
    return params


def parse_params(raw: dict[str, Any] | None) -> Params:
    """Validate a params mapping; ConfigError (one line) on the first problem."""
    return _check(config.parse_params(raw))


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate a params file; ConfigError (one line) on the first problem."""
    return _check(config.load_params(path))
