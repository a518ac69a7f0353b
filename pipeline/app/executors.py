"""Where a stage runs: a local process per worker slot, or a SLURM job through submitit.

Either way the stage runs as `dvc repro -s --wait-for-lock <stage>` in the workspace, so DVC keeps
its own bookkeeping (dvc.lock, cache, run-cache, early cutoff); DVC's per-path locks let disjoint
stages run at once and its repository lock, held only around bookkeeping, is waited for.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Protocol

SUBMITIT_HINT = "the slurm executor needs submitit: pip install -e '.[cluster]'"


def dvc_command(stage: str, force: bool) -> list[str]:
    return [sys.executable, "-m", "dvc", "--wait-for-lock", "repro", "-s", *(["-f"] if force else []), stage]


def run_dvc_stage(root: str, stage: str, force: bool, env: dict[str, str], log: str) -> int:
    """One stage through DVC, output to `log`; the exit code. Runs inside a submitit job too, so it
    takes plain arguments and is importable by name."""
    with open(log, "w") as out:
        proc = subprocess.run(dvc_command(stage, force), cwd=root, env={**os.environ, **env},
                              stdout=out, stderr=subprocess.STDOUT)
    return proc.returncode


class Executor(Protocol):
    slots: int

    def start(self, stage: str, slot: int, log: Path) -> Any: ...

    def poll(self, handle: Any) -> Optional[int]: ...

    def stop(self, handle: Any) -> None: ...


@dataclass
class Share:
    """What one worker slot may use: CPU threads, and a GPU on a machine that has them."""

    threads: int
    gpus: tuple[int, ...] = ()

    def env(self, slot: int) -> dict[str, str]:
        env = {"LTH_THREADS": str(self.threads)}
        if self.gpus:
            env["CUDA_VISIBLE_DEVICES"] = str(self.gpus[slot % len(self.gpus)])
        return env


class LocalExecutor:
    """N worker slots on this machine, each a `dvc repro -s` process with its share of the cores."""

    def __init__(self, root: Path, slots: int, share: Share, force: bool = False):
        self.root, self.slots, self.share, self.force = root, slots, share, force

    def start(self, stage: str, slot: int, log: Path) -> subprocess.Popen:
        out = open(log, "w")
        try:
            return subprocess.Popen(dvc_command(stage, self.force), cwd=self.root,
                                    env={**os.environ, **self.share.env(slot)},
                                    stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        finally:
            out.close()  # the child holds its own copy

    def poll(self, handle: subprocess.Popen) -> Optional[int]:
        return handle.poll()

    def stop(self, handle: subprocess.Popen) -> None:
        # the stage command runs under dvc in the same session: end the whole group
        if handle.poll() is None:
            try:
                os.killpg(handle.pid, signal.SIGTERM)
                handle.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(handle.pid, signal.SIGKILL)
                handle.wait()
            except ProcessLookupError:
                pass


class SubmititExecutor:
    """Each ready stage becomes a job of submitit's executor: SLURM on a cluster, or submitit's
    local executor (a detached process per job; what the tests use). The workspace must sit on a
    filesystem every node sees."""

    def __init__(self, root: Path, cluster: str, slots: int, requests: dict[str, Any], gpu_stages: set[str],
                 force: bool = False):
        try:
            import submitit
        except ImportError:
            raise RuntimeError(SUBMITIT_HINT) from None
        self.root, self.slots, self.force, self.gpu_stages = root, slots, force, gpu_stages
        self.requests = requests
        folder = root / "logs" / "submitit"
        folder.mkdir(parents=True, exist_ok=True)
        self._submitit = submitit
        self._cluster = cluster
        self._folder = folder

    def _executor(self, stage: str):
        gpus = self.requests["gpus_per_stage"] if stage.split("@")[0] in self.gpu_stages else 0
        ex = self._submitit.AutoExecutor(folder=self._folder, cluster=self._cluster)
        params: dict[str, Any] = {"timeout_min": self.requests["time_min"], "name": f"lth:{stage}",
                                  "cpus_per_task": self.requests["cpus_per_stage"], "gpus_per_node": gpus,
                                  "nodes": 1, "tasks_per_node": 1}
        if self._cluster == "slurm":
            params["mem_gb"] = self.requests["mem_gb"]
            for key in ("partition", "account"):
                if self.requests.get(key):
                    params[f"slurm_{key}"] = self.requests[key]
        ex.update_parameters(**params)
        return ex, gpus

    def start(self, stage: str, slot: int, log: Path):
        ex, gpus = self._executor(stage)
        env = {"LTH_THREADS": str(self.requests["cpus_per_stage"])}
        if gpus > 1:
            env["LTH_NPROC_PER_NODE"] = "gpu"  # one rank per GPU of the job
        return ex.submit(run_dvc_stage, str(self.root), stage, self.force, env, str(log))

    def poll(self, job) -> Optional[int]:
        if not job.done():
            return None
        try:
            return int(job.result())
        except Exception as err:  # the job itself failed (time limit, node failure, cancelled)
            with open(self._log_of(job), "a") as out:
                out.write(f"\nerror: {self._cluster} job {job.job_id} failed: {str(err).strip().splitlines()[-1]}\n")
            return 1

    def _log_of(self, job) -> str:
        return job.submission().args[4]

    def stop(self, job) -> None:
        if not job.done():
            job.cancel(check=False)
