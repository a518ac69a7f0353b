"""Faults a day-long study meets: NaNs, damaged artifacts, a full disk. Each must stop with one clear
line and leave what was already computed intact."""
import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from pipeline.core import paths
from pipeline.sparsity import tickets
from pipeline.core.errors import ArtifactError, stage_for
from pipeline.app.params import parse_params
from pipeline.ddpm.diffusion import Diffusion
from pipeline.evaluate.features import ImageClassifier, classifier_state, load_classifier
from pipeline.core.io import load_json, load_torch, save_json, save_text, save_torch
from pipeline.sparsity.masks import Mask
from stages.init import run_init
from stages.prepare import run_prepare
from pipeline.core.errors import NonFiniteError
from pipeline.train.loop import train

from conftest import TINY, merge

ROOT = Path(__file__).resolve().parents[2]


def _stage(tmp_path: Path, *args: str, params: dict | None = None) -> subprocess.CompletedProcess:
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params or TINY))
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
    return subprocess.run([sys.executable, "-m", *args], cwd=tmp_path, capture_output=True, text=True, env=env,
                          timeout=300)


def _one_line_failure(proc: subprocess.CompletedProcess, code: int) -> str:
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    err = proc.stderr.strip()
    assert "Traceback" not in err and err.count("\n") == 0, err
    return err


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


# -- non-finite training -------------------------------------------------------------------------
class NaNFromStep:
    """A Diffusion whose loss turns NaN from the n-th optimizer step on (0-based)."""

    def __init__(self, inner: Diffusion, n: int):
        self.inner, self.n, self.calls = inner, n, 0
        self.timesteps = inner.timesteps

    def loss(self, *args, **kwargs):
        out = self.inner.loss(*args, **kwargs)
        self.calls += 1
        return out * float("nan") if self.calls > self.n else out


def test_nan_loss_stops_training_and_keeps_the_last_good_checkpoint(tiny, tmp_path):
    params = tiny()  # checkpoint_every = log_every = 2, 6 steps
    torch.manual_seed(0)
    model = tickets.new_model(params)
    ckpt = tmp_path / "ckpt.pt"
    with pytest.raises(NonFiniteError, match=r"loss is nan at step 5\b"):
        train(model, NaNFromStep(Diffusion(params.diffusion), 4), torch.rand(40, 1, 8, 8) * 2 - 1,
              params.train, steps=6, seed=1, checkpoint=ckpt, fingerprint="f", progress=False)
    state = load_torch(ckpt)  # still loadable and finite (load_torch rejects NaN)
    assert state["step"] == 4


def test_non_finite_weights_with_finite_losses_stop_too(tiny, tmp_path):
    params = tiny()
    torch.manual_seed(0)
    model = tickets.new_model(params)
    inner = Diffusion(params.diffusion)

    backward = []

    def poison_last_gradient(grad):  # the loss of step 6 is finite; the update it makes is not
        backward.append(1)
        return grad * float("inf") if len(backward) == 6 else grad

    model.final_conv.weight.register_hook(poison_last_gradient)
    ckpt = tmp_path / "ckpt.pt"
    with pytest.raises(NonFiniteError, match=r"weights turned non-finite by step 6 \(losses finite so far\)"):
        train(model, inner, torch.rand(40, 1, 8, 8) * 2 - 1, params.train, steps=6, seed=1,
              checkpoint=ckpt, fingerprint="f", progress=False)
    assert load_torch(ckpt)["step"] == 4


def _write_theta0(tmp_path, monkeypatch, raw: dict) -> None:
    monkeypatch.chdir(tmp_path)  # stages write relative to the workspace
    run_init(parse_params(raw))
    run_prepare(parse_params(raw))  # dense reads the prepared training split


def test_non_finite_dense_run_exits_with_one_line_and_writes_nothing(tmp_path, monkeypatch):
    params = merge(TINY, {"train": {"lr": 1e30, "warmup_steps": 0}})
    _write_theta0(tmp_path, monkeypatch, params)
    proc = _stage(tmp_path, "stages.dense", "1", params=params)
    assert proc.returncode == 3 and "Traceback" not in proc.stderr, proc.stderr
    err = proc.stderr.strip().splitlines()[-1]  # below the progress bar
    assert [line for line in proc.stderr.splitlines() if "error" in line] == [err]
    assert err.startswith("error: dense seed 1 round 0: loss is ") and " at step " in err, err
    assert not (tmp_path / paths.train_dir(1, 0)).exists(), "no output may be written"


# -- damaged artifacts ---------------------------------------------------------------------------
@pytest.mark.parametrize("rel, stage", [
    ("artifacts/init/theta0.pt", "init"),
    ("artifacts/imp/s1/r0/train/model.pt", "dense@1"),
    ("artifacts/imp/s1/r0/train/rewind.pt", "dense@1"),
    ("artifacts/imp/s2/r3/train/model.pt", "retrain@2-round2"),
    ("artifacts/imp/s1/r1/prune/mask.pt", "prune@1-round0"),
    ("artifacts/imp/s1/r2/rewind/weights.pt", "rewind@1-round1"),
    ("artifacts/reference/stats.pt", "reference"),
    ("artifacts/features/classifier.pt", "features"),
    ("artifacts/checkpoints/s1-r0.pt", "dense@1"),
    ("artifacts/checkpoints/s2-r1.pt", "retrain@2-round0"),
])
def test_truncated_torch_artifact_names_file_and_stage(tmp_path, rel, stage):
    path = tmp_path / rel
    save_torch({"w": torch.randn(64, 64)}, path)
    _truncate(path)
    with pytest.raises(ArtifactError) as exc:
        load_torch(path)
    msg = str(exc.value)
    assert "\n" not in msg and str(path) in msg and "truncated or corrupt" in msg
    assert msg.endswith(f"re-run `dvc repro -f -s {stage}`"), msg


@pytest.mark.parametrize("rel, stage", [
    ("artifacts/layer_rates/rates.json", "layer_rates"),
    ("artifacts/eval/s1/r0/metrics.json", "eval_dense@1"),
    ("artifacts/eval/s1/r2/metrics.json", "eval@1-round1"),
    ("artifacts/eval/controls/reinit/s1/r3/metrics.json", "eval_control@reinit-1-3"),
    ("artifacts/similarity/summary.json", "similarity"),
])
def test_truncated_json_artifact_names_file_and_stage(tmp_path, rel, stage):
    path = tmp_path / rel
    save_json({"fid": 1.5, "weights": {"a": 1.0}}, path)
    _truncate(path)
    with pytest.raises(ArtifactError, match=r"not valid JSON") as exc:
        load_json(path)
    assert str(exc.value).endswith(f"`dvc repro -f -s {stage}`")


def test_nan_in_weights_file_is_an_artifact_error(tmp_path):
    state = {"a": torch.zeros(3), "b": torch.ones(4)}
    state["b"][2] = float("nan")
    save_torch(state, tmp_path / "artifacts/init/theta0.pt")
    with pytest.raises(ArtifactError, match=r"NaN or infinite values \(in b\).*dvc repro -f -s init"):
        load_torch(tmp_path / "artifacts/init/theta0.pt")


def test_corrupt_ticket_and_classifier_loaders_raise_artifact_errors(tiny, tmp_path):
    params = tiny()
    model = tickets.new_model(params)
    ticket = tmp_path / "artifacts/imp/s1/r1/train/model.pt"
    tickets.save_ticket(ticket, model, model, Mask.dense(model))
    _truncate(ticket)
    with pytest.raises(ArtifactError, match="retrain@1-round0"):
        tickets.load_ticket(ticket, params)
    save_torch({"model": {"w": torch.ones(2)}, "ema": {}, "mask": None}, ticket)  # loadable, wrong content
    with pytest.raises(ArtifactError, match=r"not a ticket of the configured model.*retrain@1-round0"):
        tickets.load_ticket(ticket, params)
    clf = tmp_path / "artifacts/features/classifier.pt"
    net = ImageClassifier(in_channels=1, image_size=8, width=4, feature_dim=8, num_classes=10)
    save_torch(classifier_state(net), clf)
    assert load_classifier(clf) is not None
    clf.write_bytes(b"garbage")
    with pytest.raises(ArtifactError, match="features"):
        load_classifier(clf)


def test_stage_with_truncated_input_exits_2_naming_file_and_stage(tmp_path, monkeypatch):
    _write_theta0(tmp_path, monkeypatch, TINY)
    _truncate(tmp_path / "artifacts/init/theta0.pt")
    err = _one_line_failure(_stage(tmp_path, "stages.dense", "1"), 2)
    assert "artifacts/init/theta0.pt" in err and "truncated or corrupt" in err and "dvc repro -f -s init" in err


def test_stage_with_corrupt_mask_exits_2(tmp_path):
    mask = tmp_path / "artifacts/imp/s1/r1/prune/mask.pt"
    mask.parent.mkdir(parents=True)
    mask.write_bytes(b"PK\x03\x04 not a torch file")
    err = _one_line_failure(_stage(tmp_path, "stages.rewind", "1", "1"), 2)
    assert str(mask.relative_to(tmp_path)) in err and "dvc repro -f -s prune@1-round0" in err


def test_corrupt_checkpoint_is_ignored_and_training_starts_over(tiny, tmp_path, capsys):
    params = tiny()
    data = torch.rand(40, 1, 8, 8) * 2 - 1

    def run(ckpt):
        torch.manual_seed(0)
        return train(tickets.new_model(params), Diffusion(params.diffusion), data, params.train, steps=4, seed=1,
                     checkpoint=ckpt, fingerprint="f", progress=False)

    clean = run(None)
    ckpt = tmp_path / "artifacts/checkpoints/s1-r0.pt"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"\x80\x02 half a pickle")
    resumed = run(ckpt)
    assert resumed.resumed_from == 0
    assert "ignoring corrupt checkpoint" in capsys.readouterr().err
    for a, b in zip(clean.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(a, b)
    assert load_torch(ckpt)["step"] == 4  # replaced by a good one


def test_stage_for_unknown_paths():
    assert stage_for("somewhere/else.pt") is None
    assert stage_for("/abs/repo/artifacts/imp/s3/r0/train/loss.csv") == "dense@3"
    assert str(ArtifactError("x/y.pt", "missing")) == "x/y.pt: missing; restore or regenerate it"


# -- write failures ------------------------------------------------------------------------------
def _disk_full_after_partial_write(target):
    """Wrap a writer so it writes a few bytes to its file and then fails as a full disk does."""
    def write(obj, f, *args, **kwargs):
        if isinstance(f, (str, os.PathLike)):
            Path(f).write_bytes(b"partial")
        else:
            f.write("partial" if "b" not in getattr(f, "mode", "b") else b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")
    return write


@pytest.mark.parametrize("kind", ["torch", "json", "text"])
def test_disk_full_keeps_the_previous_file(tmp_path, monkeypatch, kind):
    path = tmp_path / f"out.{kind}"
    save = {"torch": save_torch, "json": save_json, "text": save_text}[kind]
    load = {"torch": load_torch, "json": load_json, "text": lambda p: Path(p).read_text()}[kind]
    old = {"torch": {"w": torch.arange(3.0)}, "json": {"fid": 12.5}, "text": "version 1"}[kind]
    new = {"torch": {"w": torch.zeros(3)}, "json": {"fid": 99.0}, "text": "version 2"}[kind]
    save(old, path)
    if kind == "torch":
        monkeypatch.setattr(torch, "save", _disk_full_after_partial_write(None))
    elif kind == "json":
        monkeypatch.setattr(json, "dump", _disk_full_after_partial_write(None))
    else:
        def full(self, *a, **k):
            Path.write_bytes(self, b"partial")
            raise OSError(errno.ENOSPC, "No space left on device")
        monkeypatch.setattr(Path, "write_text", full)
    with pytest.raises(OSError) as exc:
        save(new, path)
    assert exc.value.errno == errno.ENOSPC
    monkeypatch.undo()
    got = load(path)
    if kind == "torch":
        assert torch.equal(got["w"], old["w"])
    else:
        assert got == old
    assert [p.name for p in tmp_path.iterdir()] == [path.name], "no temporary file may be left behind"


def test_disk_full_during_checkpoint_keeps_the_last_checkpoint(tiny, tmp_path, monkeypatch):
    params = tiny()
    ckpt = tmp_path / "ckpt.pt"
    real_save, calls = torch.save, []

    def flaky_save(obj, f, *args, **kwargs):
        calls.append(f)
        if len(calls) == 2:  # the second checkpoint (step 4) hits a full disk
            return _disk_full_after_partial_write(None)(obj, f)
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", flaky_save)
    torch.manual_seed(0)
    with pytest.raises(OSError):
        train(tickets.new_model(params), Diffusion(params.diffusion), torch.rand(40, 1, 8, 8) * 2 - 1, params.train,
              steps=6, seed=1, checkpoint=ckpt, fingerprint="f", progress=False)
    monkeypatch.undo()
    assert load_torch(ckpt)["step"] == 2
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]


def test_full_disk_in_a_stage_is_one_line(tmp_path, monkeypatch, capsys):
    from pipeline.app.stage import run_stage

    (tmp_path / "params.yaml").write_text(yaml.safe_dump(TINY))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["stages.init"])
    save_torch({"w": torch.ones(2)}, "artifacts/init/theta0.pt")
    monkeypatch.setattr(torch, "save", _disk_full_after_partial_write(None))
    with pytest.raises(SystemExit) as exc:
        run_stage(run_init)
    assert exc.value.code == 1
    err = capsys.readouterr().err.strip()
    assert err == ("error: init: No space left on device while writing; free space and re-run "
                   "(files written before are intact)")
    monkeypatch.undo()
    assert torch.equal(load_torch(tmp_path / "artifacts/init/theta0.pt")["w"], torch.ones(2))
