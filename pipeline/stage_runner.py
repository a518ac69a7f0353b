"""Entry glue for stages/: load params, run, and turn bad input into one clear line (exit 2)."""
from __future__ import annotations

import sys
from typing import Callable

from . import distributed
from .config import ConfigError, Params, load_params


def _stage_module() -> str:
    spec = getattr(sys.modules["__main__"], "__spec__", None)
    if spec is None or not spec.name:
        raise SystemExit("error: run stages as modules (python -m stages.<name>) so they can be relaunched")
    return spec.name


def run_stage(fn: Callable[..., None], *int_args: str, data_parallel: bool = False) -> None:
    """Call fn(params, *args) with the command line's integer arguments named by `int_args`.

    `data_parallel`: the stage can run on several ranks; when LTH_NPROC_PER_NODE / LTH_NNODES ask
    for more than one, this process is replaced by torchrun running the same command on every rank.
    """
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
        params: Params = load_params()  # validate before launching any rank
        if data_parallel:
            distributed.relaunch_if_requested(_stage_module(), argv)
            distributed.init_from_env()
            # torchrun shows rank 0's log only; @record hands any rank's traceback to its summary
            from torch.distributed.elastic.multiprocessing.errors import record

            fn = record(fn)
        fn(params, *values)
    except (ConfigError, distributed.LaunchError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    finally:
        distributed.shutdown()
