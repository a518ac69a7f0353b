"""Entry glue for stages/: load params, run, and turn bad input into one clear line (exit 2).

Bad params (ConfigError), unusable input artifacts (ArtifactError) and runtime requests that cannot
be met (LaunchError: ranks, threads, LTH_REQUIRE_CUDA=1 without CUDA) exit 2; a training run whose
loss or weights turn non-finite (NonFiniteError) exits 3; a full disk exits 1. None of them prints a
traceback.

The glue loads only the typed config: every stage pays for what it uses and no more (a report
stage never imports torch through here), and a stage's code deps stay its own. The rules that need
the U-Net's shapes run in the stages that prune (`pipeline.sparsity.rules`), in `lth-diffusion check`
and before `lth-diffusion repro` starts anything.
"""
from __future__ import annotations

import errno
import os
import sys
from typing import Callable

from pipeline.core.config import ConfigError, Params, load_params
from pipeline.core.errors import ArtifactError, LaunchError, NonFiniteError


def _stage_module() -> str:
    spec = getattr(sys.modules["__main__"], "__spec__", None)
    if spec is None or not spec.name:
        raise SystemExit("error: run stages as modules (python -m stages.<name>) so they can be relaunched")
    return spec.name


def run_stage(fn: Callable[..., None], *int_args: str, text: tuple[str, ...] = (),
              data_parallel: bool = False) -> None:
    """Call fn(params, *args) with the command line's arguments: first the text ones named by
    `text`, then the integer ones named by `int_args`.

    `data_parallel`: the stage can run on several ranks; when LTH_NPROC_PER_NODE / LTH_NNODES ask
    for more than one, this process is replaced by torchrun running the same command on every rank.
    """
    argv = sys.argv[1:]
    names = (*text, *int_args)
    stage = fn.__name__.removeprefix("run_")
    if len(argv) != len(names):
        usage = " ".join(f"<{a}>" for a in names)
        sys.exit(f"usage: python -m stages.{stage} {usage}".rstrip())
    try:
        values = [*argv[:len(text)], *(int(v) for v in argv[len(text):])]
    except ValueError:
        sys.exit(f"error: arguments {' '.join(int_args)} must be integers, got {' '.join(argv[len(text):])}")
    distributed = None
    try:
        if os.environ.get("LTH_REQUIRE_CUDA", "").strip():
            from pipeline.runtime import distributed

            distributed.require_cuda_if_asked()  # before anything slow
        params: Params = load_params()  # validate before launching any rank
        if data_parallel:
            from pipeline.runtime import distributed

            distributed.relaunch_if_requested(_stage_module(), argv)
            distributed.init_from_env()
            # torchrun shows rank 0's log only; @record hands any rank's traceback to its summary
            from torch.distributed.elastic.multiprocessing.errors import record

            fn = record(fn)
        fn(params, *values)
    except (ConfigError, ArtifactError, LaunchError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except OSError as err:
        if err.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        # writes go to a temporary file renamed into place: what was written before is intact
        print(f"error: {stage}: {err.strerror or 'disk full'} while writing; free space and re-run "
              f"(files written before are intact)", file=sys.stderr)
        sys.exit(1)
    except NonFiniteError as err:
        where = {("round" if name == "k" else name): value for name, value in zip(names, values)}
        if "seed" in where:
            where.setdefault("round", 0)  # a stage without a round is the dense run, round 0
        context = " ".join([stage] + [f"{name} {value}" for name, value in where.items()])
        print(f"error: {context}: {err}", file=sys.stderr)
        sys.exit(3)
    finally:
        if distributed is not None:
            distributed.shutdown()
