"""Real CIFAR-10 images through the whole pipeline on a tiny DVC project: prepare, training,
pruning, eval and report; then what a change in the image folder re-runs.

The tests share one project and run in file order."""
import shutil
from pathlib import Path

import pytest
from PIL import Image

from conftest import TINY, merge
from dvc_project import DvcProject

CIFAR = Path(__file__).resolve().parents[1] / "fixtures" / "cifar10-subset"
EVALS = {"eval_dense@1", "eval_dense@2", "eval@1-round0", "eval@1-round1", "eval@2-round0", "eval@2-round1"}


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    params = merge(TINY, {"data": {"dataset": "imagefolder", "root": "images", "channels": 3, "image_size": 8},
                          "controls": {"kinds": [], "rounds": []}})
    project = DvcProject(tmp_path_factory.mktemp("imagefolder"), params)
    shutil.copytree(CIFAR, project.path / "images", dirs_exist_ok=True)
    project.commit("images")
    out = project.dvc("repro")
    ran = project.ran(out.stdout)
    assert {"prepare", "dense@1", "retrain@2-round1", "report"} <= ran, ran
    project.commit("study")
    return project


def edit_pixel(path: Path) -> None:
    image = Image.open(path).convert("RGB")
    image.putpixel((0, 0), tuple(255 - v for v in image.getpixel((0, 0))))
    image.save(path.with_suffix(".png"))  # lossless, so the change survives
    path.unlink()


@pytest.mark.slow
def test_cifar_images_go_through_every_stage(project):
    import json

    info = json.loads((project.path / "artifacts" / "data" / "data.json").read_text())
    assert info["train"]["images"] == 200 and info["heldout"]["images"] == 100 and info["shape"] == [3, 8, 8]
    assert (project.path / "artifacts" / "eval" / "s2" / "r2" / "metrics.json").is_file()
    summary = (project.path / "reports" / "summary.md").read_text()
    assert "images of images, 8×8×3" in summary  # the report names the data it used
    assert project.ran(project.dvc("repro").stdout) == set(), "an unchanged folder re-runs nothing"


@pytest.mark.slow
def test_unchanged_pixels_stop_at_prepare(project):
    (project.path / "images" / "NOTES.txt").write_text("a note beside the images: not an image")
    out = project.dvc("repro")
    assert project.ran(out.stdout) == {"prepare"}, out.stdout
    project.commit("a note")


@pytest.mark.slow
def test_a_changed_heldout_image_reruns_what_reads_the_heldout_split(project):
    edit_pixel(project.path / "images" / "test" / "cat" / "0003.jpg")
    ran = project.ran(project.dvc("repro").stdout)
    # what reads the held-out split re-runs; the report only if an eval's numbers moved (early cutoff)
    assert {"prepare", "reference"} | EVALS <= ran <= {"prepare", "reference", "report"} | EVALS, ran
    project.commit("one held-out image")


@pytest.mark.slow
def test_a_changed_training_image_reruns_training(project):
    edit_pixel(project.path / "images" / "train" / "dog" / "0007.jpg")
    ran = project.ran(project.dvc("repro").stdout)
    assert {"prepare", "features", "dense@1", "dense@2", "retrain@1-round1", "report"} <= ran, ran
    assert "init" not in ran, "theta0 does not depend on the images"
