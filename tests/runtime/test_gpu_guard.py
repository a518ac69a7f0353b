"""Guards that keep a GPU machine's minutes from being wasted: LTH_REQUIRE_CUDA, rank requests
beyond the visible GPUs."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from pipeline.runtime import distributed

ROOT = Path(__file__).resolve().parents[2]


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LTH_")}
    env.update(PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", TQDM_DISABLE="1", **extra)
    return env


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_a_stage_without_cuda_stops_with_one_line_when_cuda_is_required(tiny_raw, tmp_path):
    from pipeline.app.params import parse_params

    (tmp_path / "params.yaml").write_text(yaml.safe_dump(parse_params(tiny_raw).model_dump(mode="json")))
    proc = subprocess.run([sys.executable, "-m", "stages.init"], cwd=tmp_path,
                          env=_env(LTH_REQUIRE_CUDA="1", CUDA_VISIBLE_DEVICES=""),
                          capture_output=True, text=True, timeout=120)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: LTH_REQUIRE_CUDA=1 but CUDA is unavailable: ")
    assert f"torch.version.cuda={torch.version.cuda}" in lines[0]
    assert not (tmp_path / "artifacts").exists(), "nothing ran"
    # without the variable the same stage runs on the CPU
    proc = subprocess.run([sys.executable, "-m", "stages.init"], cwd=tmp_path, env=_env(CUDA_VISIBLE_DEVICES=""),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_require_cuda_reads_the_variable():
    distributed.require_cuda_if_asked({})
    distributed.require_cuda_if_asked({"LTH_REQUIRE_CUDA": "0"})
    with pytest.raises(distributed.LaunchError, match=r"^LTH_REQUIRE_CUDA=1 but CUDA is unavailable: .+torch\.version\.cuda="):
        distributed.require_cuda_if_asked({"LTH_REQUIRE_CUDA": "1"})
    with pytest.raises(distributed.LaunchError, match="expected 1 or 0"):
        distributed.require_cuda_if_asked({"LTH_REQUIRE_CUDA": "maybe"})


def test_more_ranks_than_visible_gpus_is_one_line(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert distributed.requested_ranks({"LTH_NPROC_PER_NODE": "2"}) == (2, 1)
    assert distributed.requested_ranks({"LTH_NPROC_PER_NODE": "gpu"}) == (2, 1)
    with pytest.raises(distributed.LaunchError, match=r"LTH_NPROC_PER_NODE=4 asks for 4 ranks but this machine "
                                                      r"shows 2 GPU\(s\)") as err:
        distributed.requested_ranks({"LTH_NPROC_PER_NODE": "4"})
    assert "\n" not in str(err.value)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert distributed.requested_ranks({"LTH_NPROC_PER_NODE": "4"}) == (4, 1), "gloo ranks on the CPU: any count"


def test_process_group_timeout_outlasts_a_compile():
    from datetime import timedelta

    assert distributed.process_group_timeout({}) == timedelta(minutes=30)
    assert distributed.process_group_timeout({"LTH_DIST_TIMEOUT_MIN": "90"}) == timedelta(minutes=90)
    with pytest.raises(distributed.LaunchError, match="LTH_DIST_TIMEOUT_MIN"):
        distributed.process_group_timeout({"LTH_DIST_TIMEOUT_MIN": "0"})


def test_missing_compiler_or_python_headers_is_named_before_compiling(monkeypatch, tmp_path):
    import shutil
    import sysconfig

    from pipeline.runtime import compiling

    monkeypatch.delenv("CC", raising=False)
    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setattr(sysconfig, "get_paths", lambda: {"include": str(tmp_path)})
    cuda = compiling.compile_unavailable(torch.device("cuda"))
    assert cuda.startswith("a C compiler (CC, gcc or clang) and the Python headers") and cuda.endswith("missing")
    assert "C++ compiler" in compiling.compile_unavailable(torch.device("cpu"))
    monkeypatch.setenv("LTH_COMPILE", "1")
    assert not compiling.maybe_compile(torch.nn.Linear(1, 1), torch.device("cpu"), "test").is_compiled, \
        "eager from the start, with the reason, instead of a failed first step"
    (tmp_path / "Python.h").write_text("")
    monkeypatch.setattr(shutil, "which", lambda name: f"/usr/bin/{name}" if name == "clang" else None)
    assert compiling.missing_build_tools(torch.device("cuda")) is None


def _bench_gpu():
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_gpu", ROOT / "bench" / "gpu.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_gpu_bench_refuses_the_paper_size_without_cuda(capsys):
    with pytest.raises(SystemExit) as exit_:
        _bench_gpu().main(["--size", "paper"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --size paper needs CUDA") and "torch.version.cuda=" in err[0]


def test_gpu_bench_labels_a_compile_that_fell_back_as_eager(monkeypatch, capsys):
    """A compile that fails at its first call runs eagerly: its rows must not read 'compiled'."""
    from pipeline.runtime import compiling

    class CompilerCrash(RuntimeError):
        pass
    CompilerCrash.__module__ = "torch._inductor.exc"

    def broken_compile(module, *args, **kwargs):
        def call(*a, **kw):
            raise CompilerCrash("no C compiler")
        return call
    monkeypatch.setattr(compiling, "compile_unavailable", lambda device: None)
    monkeypatch.setattr(torch, "compile", broken_compile)
    results = _bench_gpu().main(["--size", "tiny", "--steps", "1", "--threads", "1", "--compile", "1",
                                 "--sample-steps", "1"])
    out = capsys.readouterr().out
    assert results["train"]["compiled dense"]["ran"] == "eager (compile fell back)"
    assert results["sampling"]["compiled"]["ran"] == "eager (compile fell back)"
    assert results["train"]["eager dense"]["ran"] == "eager"
    assert "eager (compile fell back) dense" in out and "\ncompiled " not in out


def _gpu_smoke():
    import importlib.util

    spec = importlib.util.spec_from_file_location("gpu_smoke", ROOT / "bench" / "gpu_smoke.py")
    smoke = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(smoke)
    return smoke


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_gpu_smoke_refuses_to_run_without_cuda_and_its_dry_run_fills_the_table(tmp_path, monkeypatch, capsys):
    smoke = _gpu_smoke()
    assert smoke.main([]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: the GPU smoke needs CUDA") and "torch.version.cuda=" in err[0]

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    md = tmp_path / "smoke.md"
    assert smoke.main(["--cpu-dry-run", "--md", str(md), "--json", str(tmp_path / "smoke.json")]) == 0, \
        capsys.readouterr().out
    table = md.read_text()
    rows = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| check")]
    checks = " ".join(rows)
    for what in ("retrain stage", "2 DDP ranks", "Inception FID features", "FID intervals on the device",
                 "one eval's FID intervals", "bench/gpu.py training dense", "bench/gpu.py sampling"):
        assert what in checks, what
    assert all(row.rstrip().endswith("| ok |") for row in rows), table
    assert not list(tmp_path.glob("artifacts")), "the smoke writes only to its scratch folder"
