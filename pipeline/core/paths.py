"""Where each stage's artifacts live (paths only; how a ticket is saved: `pipeline.sparsity.tickets`).

Round 0 is the dense run of a seed; round k >= 1 is the k-th IMP round. Each stage writes its own
folder (DVC outputs must not overlap): r{k}/prune, r{k}/rewind, r{k}/train. Controls of round k
(a ticket's mask re-drawn, or a random mask of its per-layer counts) live beside the chain under
controls/{kind}/s{seed}/r{k}/ and never feed it.
"""
from __future__ import annotations

from pathlib import Path

ROOT = Path("artifacts")


def init_dir() -> Path:
    return ROOT / "init"


def round_dir(seed: int, k: int) -> Path:
    return ROOT / "imp" / f"s{seed}" / f"r{k}"


def train_dir(seed: int, k: int) -> Path:
    return round_dir(seed, k) / "train"


def prune_dir(seed: int, k: int) -> Path:
    return round_dir(seed, k) / "prune"


def rewind_dir(seed: int, k: int) -> Path:
    return round_dir(seed, k) / "rewind"


def checkpoint_path(seed: int, k: int) -> Path:
    # persist: true in dvc.yaml, so a killed stage resumes from here
    return ROOT / "checkpoints" / f"s{seed}-r{k}.pt"


def eval_dir(seed: int, k: int) -> Path:
    return ROOT / "eval" / f"s{seed}" / f"r{k}"


def features_dir() -> Path:
    return ROOT / "features"


def classifier_path() -> Path:
    return features_dir() / "classifier.pt"


def reference_dir() -> Path:
    return ROOT / "reference"


def layer_rates_path() -> Path:
    return ROOT / "layer_rates" / "rates.json"


def schedule_rates_path(schedule: str) -> Path:
    """What prune under `schedule` needs from the layer_rates stage. One file per schedule, so the
    schedules that need nothing (all but layerwise) depend on a file that never changes."""
    return ROOT / "layer_rates" / "schedule" / f"{schedule}.json"


def control_dir(kind: str, seed: int, k: int) -> Path:
    """Start weights, mask and train/ of the `kind` control of seed `seed`'s round-k ticket."""
    return ROOT / "controls" / kind / f"s{seed}" / f"r{k}"


def control_train_dir(kind: str, seed: int, k: int) -> Path:
    return control_dir(kind, seed, k) / "train"


def control_checkpoint_path(kind: str, seed: int, k: int) -> Path:
    return ROOT / "checkpoints" / f"control-{kind}-s{seed}-r{k}.pt"


def control_eval_dir(kind: str, seed: int, k: int) -> Path:
    return ROOT / "eval" / "controls" / kind / f"s{seed}" / f"r{k}"


def similarity_dir() -> Path:
    return ROOT / "similarity"
