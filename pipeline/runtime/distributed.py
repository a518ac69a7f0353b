"""Data-parallel ranks as a runtime resource: process group, rank helpers, and the stage launcher.

How many ranks a stage uses is never a study parameter (no params key, nothing in dvc.yaml), so
moving a study from 1 to 8 GPUs keeps every cached result. The launcher reads environment variables
instead and re-executes the stage under `torch.distributed.run` (torchrun):

    LTH_NPROC_PER_NODE  ranks on this machine: an integer, or "gpu" = one per visible GPU (unset: 1)
    LTH_NNODES          machines taking part (default 1); more than one needs the two below
    LTH_RDZV_ENDPOINT   host:port of torchrun's c10d rendezvous, reachable from every machine
    LTH_RDZV_ID         a job id shared by the machines (default: derived from the stage command)
    LTH_REQUIRE_CUDA    1: a stage without a usable CUDA device stops (exit 2) instead of running
                        on the CPU for hours (an old driver, an empty CUDA_VISIBLE_DEVICES)
    LTH_DIST_TIMEOUT_MIN  minutes a collective waits for the slowest rank (default 30: ranks
                        compiling side by side take minutes before their first all-reduce)

Under torchrun, `init_from_env` joins the process group (NCCL on CUDA, gloo on the CPU) and pins
each rank to its local GPU.
"""
from __future__ import annotations

import hashlib
import os
import sys
from datetime import timedelta
from typing import Callable, Mapping, Optional, Sequence, TypeVar

import torch
import torch.distributed as dist

from pipeline.core.errors import LaunchError  # noqa: F401 (raised here, caught by the stage glue)

ENV_NPROC = "LTH_NPROC_PER_NODE"
ENV_NNODES = "LTH_NNODES"
ENV_RDZV_ENDPOINT = "LTH_RDZV_ENDPOINT"
ENV_RDZV_ID = "LTH_RDZV_ID"
ENV_REQUIRE_CUDA = "LTH_REQUIRE_CUDA"
ENV_DIST_TIMEOUT = "LTH_DIST_TIMEOUT_MIN"
DEFAULT_DIST_TIMEOUT_MIN = 30
T = TypeVar("T")



# -- where this process stands -----------------------------------------------------------------------
def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def local_world_size() -> int:
    """Ranks sharing this machine (they share its CPU cores)."""
    return int(os.environ.get("LOCAL_WORLD_SIZE", "1")) if is_distributed() else 1


def is_main() -> bool:
    """Rank 0: the only process that writes checkpoints, outputs and progress."""
    return rank() == 0


def shard(n: int, rank_: Optional[int] = None, world: Optional[int] = None) -> tuple[int, int]:
    """[lo, hi) of this rank's contiguous share of n items; shares differ by at most one item."""
    r = rank() if rank_ is None else rank_
    w = world_size() if world is None else world
    base, extra = divmod(n, w)
    lo = r * base + min(r, extra)
    return lo, lo + base + (1 if r < extra else 0)


def device() -> torch.device:
    """This rank's device: its local GPU under torchrun, the current GPU, or the CPU."""
    if not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda", int(os.environ.get("LOCAL_RANK", torch.cuda.current_device())))


def cuda_missing_reason() -> Optional[str]:
    """Why this process has no usable CUDA device, or None when it has one."""
    import warnings

    if torch.version.cuda is None:
        return f"this torch build has no CUDA support (torch {torch.__version__})"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        available = torch.cuda.is_available()  # an old driver or a failed init warns here
    if available:
        return None
    hidden = os.environ.get("CUDA_VISIBLE_DEVICES")
    if hidden is not None and hidden.strip() in ("", "-1"):
        return f"CUDA_VISIBLE_DEVICES={hidden!r} hides every GPU"
    for w in caught:
        text = " ".join(str(w.message).split())
        if text:
            return text[:300]
    return "no CUDA device found (torch.cuda.device_count() == 0)"


def require_cuda_if_asked(env: Mapping[str, str] = os.environ) -> None:
    """LaunchError (one line: the reason and torch.version.cuda) when LTH_REQUIRE_CUDA=1 and CUDA
    is unusable here: a GPU preset must not fall back to hours on the CPU without a word."""
    raw = env.get(ENV_REQUIRE_CUDA, "").strip().lower()
    if raw in ("", "0", "false", "no", "off"):
        return
    if raw not in ("1", "true", "yes", "on"):
        raise LaunchError(f"{ENV_REQUIRE_CUDA}={env.get(ENV_REQUIRE_CUDA)!r}: expected 1 or 0")
    reason = cuda_missing_reason()
    if reason is not None:
        raise LaunchError(f"{ENV_REQUIRE_CUDA}=1 but CUDA is unavailable: {reason} "
                          f"(torch {torch.__version__}, torch.version.cuda={torch.version.cuda})")


# -- process group ---------------------------------------------------------------------------------
def launched_by_torchrun(env: Mapping[str, str] = os.environ) -> bool:
    return "TORCHELASTIC_RUN_ID" in env or ("RANK" in env and "WORLD_SIZE" in env and "LOCAL_RANK" in env)


def init_from_env() -> bool:
    """Join the process group torchrun described in the environment; False when not under torchrun
    or alone in it."""
    if is_distributed() or not launched_by_torchrun() or int(os.environ.get("WORLD_SIZE", "1")) < 2:
        return is_distributed()
    timeout = process_group_timeout()
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
        dist.init_process_group("nccl", device_id=device(), timeout=timeout)
    else:
        dist.init_process_group("gloo", timeout=timeout)
    return True


def process_group_timeout(env: Mapping[str, str] = os.environ) -> timedelta:
    """How long a collective waits for the slowest rank: LTH_DIST_TIMEOUT_MIN minutes (default 30).
    NCCL's 10 minutes is too short while 8 ranks compile the U-Net side by side (each compile takes
    minutes on a busy node's CPUs) and the first one done waits in DDP's first all-reduce."""
    raw = env.get(ENV_DIST_TIMEOUT, "").strip() or str(DEFAULT_DIST_TIMEOUT_MIN)
    try:
        minutes = float(raw)
    except ValueError:
        raise LaunchError(f"{ENV_DIST_TIMEOUT}={raw!r}: expected minutes (a positive number)") from None
    if minutes <= 0:
        raise LaunchError(f"{ENV_DIST_TIMEOUT}={raw!r}: expected minutes (a positive number)")
    return timedelta(minutes=minutes)


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0")) if is_distributed() else 0


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def in_turn(fn: Callable[[bool], T]) -> T:
    """fn(first) on every rank, rank 0 first, then the first rank of each other machine, then the
    rest, each group after the one before has finished (a download into a shared or per-machine
    folder happens once, no rank reads a half-written file). `first` is True for the ranks that
    may fetch (rank 0, and local rank 0 elsewhere). An error is raised after the group's barrier,
    so the other ranks never wait for a rank that has already failed."""
    if not is_distributed():
        return fn(True)
    group = 0 if rank() == 0 else 1 if local_rank() == 0 else 2
    result, error = None, None
    for turn in range(3):
        if turn == group:
            try:
                result = fn(group < 2)
            except Exception as err:  # noqa: BLE001 - re-raised below, after the barrier
                error = err
        barrier()
    if error is not None:
        raise error
    return result


def main_first(fn: Callable[[], T]) -> Optional[T]:
    """fn() on rank 0 only, while the other ranks wait at a barrier (they then read what it wrote).
    Its error is raised after the barrier, so no rank waits for a rank that has failed."""
    result, error = None, None
    if is_main():
        try:
            result = fn()
        except Exception as err:  # noqa: BLE001 - re-raised below, after the barrier
            error = err
    barrier()
    if error is not None:
        raise error
    return result


def gather_rows(local: torch.Tensor, total: int) -> torch.Tensor:
    """Concatenate every rank's rows in rank order (shares from `shard`, so ranks differ by at most
    one row) on every rank. Communication goes through the tensor's device (NCCL needs CUDA)."""
    if not is_distributed():
        return local
    counts = [shard(total, r)[1] - shard(total, r)[0] for r in range(world_size())]
    most = max(counts)
    padded = local.new_zeros((most, *local.shape[1:]))
    padded[: len(local)] = local
    parts = [torch.empty_like(padded) for _ in counts]
    dist.all_gather(parts, padded)
    return torch.cat([p[:c] for p, c in zip(parts, counts)])


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    if is_distributed():
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


# -- launching -------------------------------------------------------------------------------------
def requested_ranks(env: Mapping[str, str] = os.environ) -> tuple[int, int]:
    """(ranks per node, nodes) asked for through LTH_NPROC_PER_NODE / LTH_NNODES."""
    raw = env.get(ENV_NPROC, "").strip() or "1"
    if raw == "gpu":
        nproc = max(torch.cuda.device_count(), 1)
    else:
        try:
            nproc = int(raw)
        except ValueError:
            raise LaunchError(f"{ENV_NPROC}={raw!r}: expected a positive integer or 'gpu'") from None
    try:
        nnodes = int(env.get(ENV_NNODES, "").strip() or "1")
    except ValueError:
        raise LaunchError(f"{ENV_NNODES}={env.get(ENV_NNODES)!r}: expected a positive integer") from None
    if nproc < 1 or nnodes < 1:
        raise LaunchError(f"{ENV_NPROC} and {ENV_NNODES} must be >= 1 (got {nproc}, {nnodes})")
    if nproc > 1 and torch.cuda.is_available() and nproc > torch.cuda.device_count():
        # two ranks on one GPU would share it at half speed each, or run out of its memory
        raise LaunchError(f"{ENV_NPROC}={raw} asks for {nproc} ranks but this machine shows "
                          f"{torch.cuda.device_count()} GPU(s) (CUDA_VISIBLE_DEVICES="
                          f"{os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')}): use at most that many, or 'gpu'")
    return nproc, nnodes


def torchrun_command(module: str, args: Sequence[str], env: Mapping[str, str] = os.environ) -> Optional[list[str]]:
    """The torchrun command line that runs `python -m module args` on the requested ranks, or None
    when one rank is asked for or this process already is a rank."""
    nproc, nnodes = requested_ranks(env)
    if nproc * nnodes == 1 or launched_by_torchrun(env):
        return None
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={nproc}",
           "--local-ranks-filter=0"]  # one copy of the logs: rank 0's
    if nnodes == 1:
        cmd.append("--standalone")  # a free local port: concurrent stages and queued sweeps never clash
    else:
        endpoint = env.get(ENV_RDZV_ENDPOINT, "").strip()
        if not endpoint:
            raise LaunchError(f"{ENV_NNODES}={nnodes} needs {ENV_RDZV_ENDPOINT}=host:port (the c10d rendezvous)")
        job = env.get(ENV_RDZV_ID, "").strip() or "lth-" + hashlib.sha256(
            " ".join([module, *args]).encode()).hexdigest()[:12]
        cmd += [f"--nnodes={nnodes}", "--rdzv-backend=c10d", f"--rdzv-endpoint={endpoint}", f"--rdzv-id={job}"]
    return [*cmd, "-m", module, *args]


def relaunch_if_requested(module: str, args: Sequence[str]) -> None:
    """Replace this process by torchrun running the same stage on the requested ranks (no return),
    or return at once when a single rank is asked for."""
    cmd = torchrun_command(module, args)
    if cmd is None:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(cmd[0], cmd)
