"""Two `dvc repro` at once in one workspace: the second gets DVC's lock error, nothing is corrupted."""
import time
from pathlib import Path

import yaml

from pipeline.core.io import load_torch

from conftest import TINY
from dvc_project import DvcProject

# the first run's init stage announces itself, then waits for the test's go-ahead: the second
# `dvc repro` is started while the first certainly holds the workspace lock, without fixed sleeps
HOLD = '''import pathlib, time
pathlib.Path("running").touch()
for _ in range(1200):
    if pathlib.Path("go").exists():
        break
    time.sleep(0.05)
'''


def _wait_for(path: Path, proc, timeout: float = 300) -> None:
    end = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.stdout.read()
        assert time.monotonic() < end, "the first dvc repro never started its stage"
        time.sleep(0.05)


def test_second_repro_gets_the_lock_error_and_corrupts_nothing(tmp_path):
    proj = DvcProject(tmp_path, TINY)
    init = proj.path / "stages" / "init.py"
    text = init.read_text()
    main = text.index('if __name__ == "__main__":')
    init.write_text(text[:main] + HOLD + text[main:])
    proj.commit("init stage that waits for a go-ahead")
    proj.dvc("repro", "prepare")  # the one stage that needs nothing of init's: done, so the second run has nothing free

    first = proj.popen_dvc("repro", "init")
    try:
        _wait_for(proj.path / "running", first)
        second = proj.dvc("repro", check=False)  # the whole pipeline, as a user would type it
        (proj.path / "go").touch()
        out, _ = first.communicate(timeout=300)
    finally:
        if first.poll() is None:
            first.kill()
    assert second.returncode != 0
    said = second.stdout + second.stderr
    # DVC locks each stage's outputs for the length of its run (.dvc/tmp/rwlock), the repository
    # itself (.dvc/tmp/lock) only around bookkeeping: either refusal is DVC's lock error
    assert "is busy, it is being blocked by" in said or "Unable to acquire lock" in said, said
    assert "Running stage" not in second.stdout, "the second run must not start any stage"

    assert first.returncode == 0, out
    assert load_torch(proj.path / "artifacts" / "init" / "theta0.pt")  # whole and loadable
    lock = yaml.safe_load((proj.path / "dvc.lock").read_text())
    assert set(lock["stages"]) == {"prepare", "init"}
    status = proj.dvc("status", "init")
    assert "up to date" in status.stdout, status.stdout
