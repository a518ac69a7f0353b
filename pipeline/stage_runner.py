"""Entry glue for stages/: load params, run, and turn bad input into one clear line (exit 2)."""
from __future__ import annotations

import sys
from typing import Callable

from .config import ConfigError, Params, load_params


def run_stage(fn: Callable[..., None], *int_args: str) -> None:
    """Call fn(params, *args) with the command line's integer arguments named by `int_args`."""
    argv = sys.argv[1:]
    if len(argv) != len(int_args):
        names = " ".join(f"<{a}>" for a in int_args)
        stage = fn.__name__.removeprefix("run_")
        sys.exit(f"usage: python -m stages.{stage} {names}".rstrip())
    try:
        values = [int(v) for v in argv]
    except ValueError:
        sys.exit(f"error: arguments {' '.join(int_args)} must be integers, got {' '.join(argv)}")
    try:
        params: Params = load_params()
        fn(params, *values)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
