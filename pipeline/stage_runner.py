"""Entry glue for stages/: load params, run, and turn bad input into one clear line (exit 2)."""
from __future__ import annotations

import sys
from typing import Callable

from .config import ConfigError, Params, load_params


def run_stage(fn: Callable[..., None], *int_args: str, text: tuple[str, ...] = ()) -> None:
    """Call fn(params, *args) with the command line's arguments: first the text ones named by
    `text`, then the integer ones named by `int_args`."""
    argv = sys.argv[1:]
    names = (*text, *int_args)
    if len(argv) != len(names):
        usage = " ".join(f"<{a}>" for a in names)
        stage = fn.__name__.removeprefix("run_")
        sys.exit(f"usage: python -m stages.{stage} {usage}".rstrip())
    try:
        values = [*argv[:len(text)], *(int(v) for v in argv[len(text):])]
    except ValueError:
        sys.exit(f"error: arguments {' '.join(int_args)} must be integers, got {' '.join(argv[len(text):])}")
    try:
        params: Params = load_params()
        fn(params, *values)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
