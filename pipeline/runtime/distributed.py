"""Data-parallel ranks as a runtime resource: process group, rank helpers, and the stage launcher.

How many ranks a stage uses is never a study parameter (no params key, nothing in dvc.yaml), so
moving a study from 1 to 8 GPUs keeps every cached result. The launcher reads environment variables
instead and re-executes the stage under `torch.distributed.run` (torchrun):

    LTH_NPROC_PER_NODE  ranks on this machine: an integer, or "gpu" = one per visible GPU (unset: 1)
    LTH_NNODES          machines taking part (default 1); more than one needs the two below
    LTH_RDZV_ENDPOINT   host:port of torchrun's c10d rendezvous, reachable from every machine
    LTH_RDZV_ID         a job id shared by the machines (default: derived from the stage command)

Under torchrun, `init_from_env` joins the process group (NCCL on CUDA, gloo on the CPU) and pins
each rank to its local GPU.
"""
from __future__ import annotations

import hashlib
import os
import sys
from typing import Mapping, Optional, Sequence

import torch
import torch.distributed as dist

from pipeline.core.errors import LaunchError  # noqa: F401 (raised here, caught by the stage glue)

ENV_NPROC = "LTH_NPROC_PER_NODE"
ENV_NNODES = "LTH_NNODES"
ENV_RDZV_ENDPOINT = "LTH_RDZV_ENDPOINT"
ENV_RDZV_ID = "LTH_RDZV_ID"



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


# -- process group ---------------------------------------------------------------------------------
def launched_by_torchrun(env: Mapping[str, str] = os.environ) -> bool:
    return "TORCHELASTIC_RUN_ID" in env or ("RANK" in env and "WORLD_SIZE" in env and "LOCAL_RANK" in env)


def init_from_env() -> bool:
    """Join the process group torchrun described in the environment; False when not under torchrun
    or alone in it."""
    if is_distributed() or not launched_by_torchrun() or int(os.environ.get("WORLD_SIZE", "1")) < 2:
        return is_distributed()
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
        dist.init_process_group("nccl", device_id=device())
    else:
        dist.init_process_group("gloo")
    return True


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


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
