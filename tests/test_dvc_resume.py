import os
import signal
import time

import pytest

from conftest import TINY, merge
from dvc_project import DvcProject


@pytest.mark.slow
def test_killed_dense_stage_resumes_from_its_checkpoint(tmp_path):
    params = merge(TINY, {"train": {"steps": 400, "checkpoint_every": 40, "log_every": 20}})
    project = DvcProject(tmp_path, params)
    project.dvc("repro", "init")
    ckpt = tmp_path / "artifacts" / "checkpoints" / "s1-r0.pt"
    proc = project.popen_dvc("repro", "dense@1")
    deadline = time.time() + 240
    while not ckpt.exists():
        assert proc.poll() is None, f"dense finished before it could be killed:\n{proc.stdout.read()}"
        assert time.time() < deadline, "no checkpoint appeared"
        time.sleep(0.2)
    time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)  # kill -9: DVC and the stage with it
    proc.wait()
    assert not (tmp_path / "artifacts" / "imp" / "s1" / "r0" / "train" / "model.pt").exists()

    out = project.dvc("repro", "dense@1")
    text = out.stdout + out.stderr
    assert "resuming from the checkpoint at step" in text, text
    assert "step 0" not in text.split("resuming from the checkpoint at step")[1][:3]
    assert (tmp_path / "artifacts" / "imp" / "s1" / "r0" / "train" / "model.pt").exists()
    again = project.dvc("repro", "dense@1")
    assert project.ran(again.stdout) == set(), again.stdout
