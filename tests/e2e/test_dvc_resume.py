import os
import re
import shutil
import signal
import time

import pandas as pd
import pytest
import torch

from conftest import TINY, merge
from dvc_project import DvcProject
from pipeline.core import paths
from pipeline.app.params import parse_params
from pipeline.core.io import load_torch
from stages.dense import run_dense

STEPS, EVERY = 400, 40


@pytest.mark.slow
def test_killed_dense_stage_resumes_from_its_checkpoint(tmp_path, monkeypatch):
    params = merge(TINY, {"train": {"steps": STEPS, "checkpoint_every": EVERY, "log_every": 20}})
    project = DvcProject(tmp_path / "project", params)
    # bit-equality is a property of the resume logic on CPU; CUDA kernels need not be deterministic
    project.env["CUDA_VISIBLE_DEVICES"] = ""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    root = project.path
    project.dvc("repro", "init")
    ckpt = root / "artifacts" / "checkpoints" / "s1-r0.pt"
    model_file = root / "artifacts" / "imp" / "s1" / "r0" / "train" / "model.pt"
    proc = project.popen_dvc("repro", "dense@1")
    deadline = time.time() + 240
    while not ckpt.exists():
        assert proc.poll() is None, f"dense finished before it could be killed:\n{proc.stdout.read()}"
        assert time.time() < deadline, "no checkpoint appeared"
        time.sleep(0.2)
    time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)  # kill -9: DVC and the stage with it
    proc.wait()
    assert not model_file.exists()

    out = project.dvc("repro", "dense@1")
    text = out.stdout + out.stderr
    resumed_at = [int(s) for s in re.findall(r"resuming from the checkpoint at step (\d+)", text)]
    assert len(resumed_at) == 1, text
    step = resumed_at[0]
    assert 0 < step < STEPS and step % EVERY == 0, f"resumed at step {step}: only the rest was trained"
    assert model_file.exists()
    again = project.dvc("repro", "dense@1")
    assert project.ran(again.stdout) == set(), again.stdout

    # the killed-and-resumed stage ends exactly where an uninterrupted run of the same stage ends
    reference = tmp_path / "uninterrupted"
    shutil.copytree(root / "artifacts" / "init", reference / paths.init_dir())
    shutil.copytree(root / "artifacts" / "data", reference / paths.data_dir())
    monkeypatch.chdir(reference)
    run_dense(parse_params(params), 1)
    resumed, whole = load_torch(model_file), load_torch(paths.train_dir(1, 0) / "model.pt")
    for part in ("model", "ema"):
        for name, tensor in whole[part].items():
            assert torch.equal(resumed[part][name], tensor), (part, name)
    rewind = load_torch(root / "artifacts" / "imp" / "s1" / "r0" / "train" / "rewind.pt")
    for name, tensor in load_torch(paths.train_dir(1, 0) / "rewind.pt").items():
        assert torch.equal(rewind[name], tensor), ("theta_k", name)
    history = pd.read_csv(root / "artifacts" / "imp" / "s1" / "r0" / "train" / "loss.csv")
    expected = pd.read_csv(paths.train_dir(1, 0) / "loss.csv")
    assert history["step"].tolist() == list(range(20, STEPS + 1, 20))
    pd.testing.assert_frame_equal(history[["step", "loss", "lr"]], expected[["step", "loss", "lr"]])
