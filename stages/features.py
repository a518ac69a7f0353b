"""DVC stage 'features': the offline FID feature extractor. Copies the pinned classifier of
pipeline/assets/ after checking its sha256, or (other data/params, or features.source: train)
trains one; features.json says which.

Usage: python -m stages.features
"""
from __future__ import annotations

import torch
from tqdm.auto import tqdm

from pipeline.app.stage import run_stage
from pipeline.core import paths
from pipeline.core.config import Params
from pipeline.core.io import save_json, save_torch
from pipeline.data.prepared import images_sha256, load_uint8
from pipeline.evaluate.features import classifier_state, train_classifier
from pipeline.evaluate.pinned import find_pin, install, sha256_file
from pipeline.runtime.device import cpu_threads


def run_features(params: Params) -> None:
    """The FID classifier: the pinned file when its manifest matches the params (and
    features.source is 'pinned'), else trained here. features.json says which."""
    images, labels = load_uint8(params.data)
    pin = find_pin(params, images_sha256=images_sha256(images)) if params.features.source == "pinned" else None
    if pin is not None:
        digest = install(pin, paths.classifier_path())
        report = {"dataset": params.data.dataset, "source": "pinned",
                  "pinned_file": f"pipeline/assets/{pin.weights.name}", "sha256": digest,
                  **pin.manifest["report"]}
        save_json(report, paths.features_dir() / "features.json")
        tqdm.write(f"features: pinned classifier {report['pinned_file']} (sha256 {digest[:12]}…, held-out "
                   f"accuracy {report['holdout_accuracy']:.1%}) -> {paths.classifier_path()}")
        return
    reason = ("features.source = train" if params.features.source == "train" else
              "no pinned classifier matches these data and features params")
    torch.set_num_threads(cpu_threads())  # a small CNN: CPU is enough, even next to a GPU
    result = train_classifier(images, labels, params.features)
    save_torch(classifier_state(result.net), paths.classifier_path())
    report = {"dataset": params.data.dataset, "source": "trained", "source_reason": reason,
              "sha256": sha256_file(paths.classifier_path()), **result.report}
    save_json(report, paths.features_dir() / "features.json")
    acc = report["holdout_accuracy"]
    tqdm.write(f"features: classifier ({report['parameters']:,} params) trained {report['steps']} steps in "
               f"{result.seconds:.1f} s ({reason}); held-out accuracy "
               f"{'n/a' if acc is None else f'{acc:.1%}'} on {report['holdout']} images -> {paths.classifier_path()}")


if __name__ == "__main__":
    run_stage(run_features)
