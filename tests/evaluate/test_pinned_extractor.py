"""The pinned FID classifier: matched to the default params, copied verbatim and verified, loud
when modified, and reproducing its recorded FID on the same images."""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pipeline.evaluate import pinned as P
import stages.features as features_stage
from stages.prepare import run_prepare
from pipeline.evaluate.reference import extractor_digest
from pipeline.app.params import load_params, parse_params
from pipeline.core.config import ConfigError
from pipeline.evaluate.features import ClassifierResult, ImageClassifier
from pipeline.core.io import load_json

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def default_params():
    return load_params(ROOT / "params.yaml")


def test_default_params_have_a_committed_pin(default_params):
    pin = P.find_pin(default_params)
    assert pin is not None, "params.yaml's data/features no longer match the pinned classifier's manifest"
    assert pin.weights.parent == ROOT / "pipeline" / "assets"
    assert hashlib.sha256(pin.weights.read_bytes()).hexdigest() == pin.manifest["sha256"]
    assert len(pin.manifest["sha256"]) == 64 and 0.9 < pin.manifest["holdout_accuracy"] <= 1
    # any change to what the classifier is trained on or how: no pin
    for over in ({"features": {"steps": 601}}, {"data": {"image_size": 16}, "model": {"attn_resolutions": [4]}}, {"data": {"heldout": 400}},
                 {"features": {"seed": 1}}):
        raw = default_params.model_dump(mode="json")
        for section, values in over.items():
            raw[section].update(values)
        assert P.find_pin(parse_params(raw)) is None
    # features.source is not part of the key
    raw = default_params.model_dump(mode="json")
    raw["features"]["source"] = "train"
    assert P.find_pin(parse_params(raw)) == pin


def test_features_stage_copies_the_pin_verbatim(tmp_path, monkeypatch, default_params):
    monkeypatch.chdir(tmp_path)
    run_prepare(default_params)
    features_stage.run_features(default_params)
    pin = P.find_pin(default_params)
    out = tmp_path / "artifacts/features/classifier.pt"
    assert out.read_bytes() == pin.weights.read_bytes()
    report = load_json(tmp_path / "artifacts/features/features.json")
    assert report["source"] == "pinned" and report["sha256"] == pin.manifest["sha256"]
    assert not any("second" in key or "thread" in key for key in report)  # byte-stable: no timings
    first = (tmp_path / "artifacts/features/features.json").read_bytes()
    features_stage.run_features(default_params)
    assert (tmp_path / "artifacts/features/features.json").read_bytes() == first
    assert extractor_digest(default_params) == pin.manifest["sha256"]


def test_source_train_or_no_match_trains_and_says_why(tmp_path, monkeypatch, default_params):
    monkeypatch.chdir(tmp_path)
    run_prepare(default_params)
    tiny = ImageClassifier(1, 12, 4, 8, 10)
    calls = []

    def fake_train(images, labels, cfg, progress=True):
        calls.append(len(images))
        return ClassifierResult(tiny, {"holdout_accuracy": None, "holdout": 0, "steps": cfg.steps,
                                       "parameters": 1}, 0.0)

    monkeypatch.setattr(features_stage, "train_classifier", fake_train)
    raw = default_params.model_dump(mode="json")
    raw["features"]["source"] = "train"
    features_stage.run_features(parse_params(raw))
    report = load_json(tmp_path / "artifacts/features/features.json")
    assert calls == [4500] and report["source"] == "trained" and "features.source" in report["source_reason"]
    assert report["sha256"] == hashlib.sha256((tmp_path / "artifacts/features/classifier.pt").read_bytes()).hexdigest()

    raw = default_params.model_dump(mode="json")
    raw["features"]["steps"] = 5
    features_stage.run_features(parse_params(raw))
    report = load_json(tmp_path / "artifacts/features/features.json")
    assert len(calls) == 2 and report["source"] == "trained" and "no pinned" in report["source_reason"]


def test_modified_pin_fails_loudly_with_one_line(tmp_path, default_params):
    """The features stage, run as DVC runs it, on a copy of the project whose pinned file has one
    byte changed: exit 2, one line naming the file and both hashes, nothing written."""
    for name in ("pipeline", "stages"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(ROOT / "params.yaml", tmp_path / "params.yaml")
    pin = P.find_pin(default_params)
    copy = tmp_path / "pipeline/assets" / pin.weights.name
    blob = bytearray(copy.read_bytes())
    blob[len(blob) // 2] ^= 0x01
    copy.write_bytes(bytes(blob))
    actual = hashlib.sha256(bytes(blob)).hexdigest()

    env = {**os.environ, "PYTHONPATH": str(tmp_path), "TQDM_DISABLE": "1"}
    subprocess.run([sys.executable, "-m", "stages.prepare"], cwd=tmp_path, env=env, check=True, capture_output=True,
                   timeout=300)
    proc = subprocess.run([sys.executable, "-m", "stages.features"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert str(copy) in lines[0] and pin.manifest["sha256"] in lines[0] and actual in lines[0]
    assert not (tmp_path / "artifacts/features/classifier.pt").exists()

    with pytest.raises(ConfigError, match="modified"):
        P.verified_bytes(P.Pin(copy, pin.manifest))


def test_pinned_extractor_gives_the_recorded_fid_on_the_same_images(tmp_path, monkeypatch, default_params):
    """The same real images through the pinned weights give the FID recorded when it was pinned
    (float32 features: equal to ~1e-4 relative across machines), and twice the same here."""
    torch.set_num_threads(1)
    monkeypatch.chdir(tmp_path)  # a clean checkout has no prepared data: make it here
    run_prepare(default_params)
    pin = P.find_pin(default_params)
    recorded = pin.manifest["check"]["fid"]
    now = P.check_fid(default_params, pin.weights)
    assert now == pytest.approx(recorded, rel=1e-4)
    assert P.check_fid(default_params, pin.weights) == now
