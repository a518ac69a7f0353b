"""`lth-diffusion repro -j 2` on a tiny study: the same bytes as `dvc repro`, a killed run resumes to
them, a failure stops only its descendants, and submitit's local executor runs stages too."""
from __future__ import annotations

import hashlib
import signal
import subprocess
import sys
import time

import psutil
import pytest
import yaml

from conftest import TINY, merge
from dvc_project import DvcProject
from pipeline.app.cli import stage_count
from pipeline.app.params import parse_params

# one IMP round keeps the study small; it still has every kind of stage
STUDY = merge(TINY, {"imp": {"rounds": [{"k": 1, "prev": 0}]}})
CHAIN = ["retrain@1-round0", "retrain@2-round0"]  # targets whose upstream is init, prepare, dense, layer_rates, prune, rewind


def lock(project: DvcProject) -> dict:
    """dvc.lock parsed: DVC writes entries in completion order, so compare contents, not bytes."""
    return yaml.safe_load((project.path / "dvc.lock").read_text())["stages"]


def outputs(project: DvcProject) -> dict[str, str]:
    return {str(p.relative_to(project.path)): hashlib.sha256(p.read_bytes()).hexdigest()
            for folder in ("artifacts", "reports") for p in sorted((project.path / folder).rglob("*"))
            if p.is_file() and "checkpoints" not in p.parts}


def runner(project: DvcProject, *args: str, check: bool = False) -> subprocess.CompletedProcess:
    return project.run(sys.executable, "-m", "pipeline.app.cli", "repro", *args, check=check)


@pytest.fixture(scope="module")
def serial(tmp_path_factory):
    project = DvcProject(tmp_path_factory.mktemp("serial"), STUDY)
    project.dvc("repro")
    return project


@pytest.mark.slow
def test_parallel_run_equals_dvc_repro_byte_for_byte(serial, tmp_path):
    project = DvcProject(tmp_path, STUDY)
    out = runner(project, "-j", "2")
    assert out.returncode == 0, out.stderr
    assert "2 workers × 1 thread" in out.stderr
    assert f"{stage_count(parse_params(STUDY))} stages to run (0 up to date)" in out.stderr
    assert lock(project) == lock(serial)
    assert outputs(project) == outputs(serial)
    assert len(outputs(project)) > 40
    status = project.dvc("status")
    assert "up to date" in status.stdout, status.stdout
    assert project.ran(project.dvc("repro").stdout) == set(), "dvc repro finds nothing left to do"
    assert "nothing to do" in runner(project, "-j", "2").stderr
    log = (project.path / "logs" / "repro" / "dense@1.log").read_text()
    assert "Running stage 'dense@1'" in log, "each stage has its own log"


@pytest.mark.slow
def test_a_killed_parallel_run_resumes_to_the_same_bytes(serial, tmp_path):
    project = DvcProject(tmp_path, STUDY)
    proc = subprocess.Popen([sys.executable, "-m", "pipeline.app.cli", "repro", "-j", "2", *CHAIN],
                            cwd=project.path, env=project.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    started = project.path / "logs" / "repro" / "retrain@1-round0.log"
    deadline = time.monotonic() + 300
    while not started.exists():
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline, "the run never reached the retrain stage"
        time.sleep(0.05)
    time.sleep(2)  # into the retrain's start-up or training: a killed run resumes from its checkpoint
    # a crash, not a polite stop: the runner and every stage process it started die at once
    tree = [proc.pid] + [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
    for pid in tree:
        try:
            psutil.Process(pid).kill()
        except psutil.NoSuchProcess:
            pass
    proc.wait()
    done_before = set(lock(project)) if (project.path / "dvc.lock").exists() else set()
    assert "init" in done_before and not set(CHAIN) <= done_before, "killed midway"

    again = runner(project, "-j", "2", *CHAIN)
    assert again.returncode == 0, again.stderr
    ours, theirs = lock(project), lock(serial)
    assert set(ours) == {"init", "prepare", "dense@1", "dense@2", "layer_rates", "prune@1-round0", "prune@2-round0",
                         "rewind@1-round0", "rewind@2-round0", *CHAIN}
    assert all(ours[s] == theirs[s] for s in ours)
    mine = outputs(project)
    assert mine and all(serial_hash == mine[path] for path, serial_hash in outputs(serial).items() if path in mine)


@pytest.mark.slow
def test_a_failed_stage_keeps_its_siblings_and_names_itself(tmp_path):
    project = DvcProject(tmp_path, STUDY)
    prune = project.path / "stages" / "prune.py"
    text = prune.read_text()
    main = text.index('if __name__ == "__main__":')
    prune.write_text(text[:main] + "import sys\nif sys.argv[1:2] == ['2']:\n"
                     "    print('error: prune seed 2: injected failure', file=sys.stderr)\n"
                     "    sys.exit(2)\n" + text[main:])
    project.commit("prune fails for seed 2")
    out = runner(project, "-j", "2", *CHAIN)
    assert out.returncode == 1
    assert "failed: prune@2-round0: error: prune seed 2: injected failure" in out.stderr, out.stderr
    assert "not run because an upstream stage failed: 2 stages" in out.stderr
    done = set(lock(project))
    assert {"init", "dense@1", "dense@2", "prune@1-round0", "rewind@1-round0", "retrain@1-round0"} <= done
    assert not done & {"prune@2-round0", "rewind@2-round0", "retrain@2-round0"}


@pytest.mark.slow
def test_submitit_local_executor_runs_stages_through_dvc(tmp_path):
    pytest.importorskip("submitit", reason="pip install -e '.[cluster]'")
    project = DvcProject(tmp_path, merge(STUDY, {"cluster": {"cpus_per_stage": 1, "time_min": 10}}))
    out = runner(project, "--executor", "submitit-local", "-j", "2", "dense@1")
    assert out.returncode == 0, out.stderr
    assert set(lock(project)) == {"init", "prepare", "dense@1"}
    assert "up to date" in project.dvc("status", "dense@1").stdout
    assert list((project.path / "logs" / "submitit").glob("*_submitted.pkl")), "jobs went through submitit"


def test_interrupt_stops_the_running_stages(tmp_path):
    """SIGINT (Ctrl-C) ends the runner's stages and says how to continue; exit 130."""
    project = DvcProject(tmp_path, STUDY)
    init = project.path / "stages" / "init.py"
    text = init.read_text()
    main = text.index('if __name__ == "__main__":')
    init.write_text(text[:main] + "import pathlib, time\npathlib.Path('running').touch()\ntime.sleep(600)\n"
                    + text[main:])
    project.commit("init that hangs")
    proc = subprocess.Popen([sys.executable, "-m", "pipeline.app.cli", "repro", "-j", "2", "init"],
                            cwd=project.path, env=project.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + 120
    while not (project.path / "running").exists():
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    children = psutil.Process(proc.pid).children(recursive=True)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted: run the same command again" in err
    psutil.wait_procs(children, timeout=30)
    assert not any(c.is_running() and c.status() != psutil.STATUS_ZOMBIE for c in children), "stage processes left"
