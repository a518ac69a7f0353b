"""Where each stage's artifacts live, and how a trained ticket is saved and loaded.

Round 0 is the dense run of a seed; round k >= 1 is the k-th IMP round. Each stage writes its own
folder (DVC outputs must not overlap): r{k}/prune, r{k}/rewind, r{k}/train. Controls of round k
(a ticket's mask re-drawn, or a random mask of its per-layer counts) live beside the chain under
controls/{kind}/s{seed}/r{k}/ and never feed it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch
from torch import nn

from .artifact_errors import ArtifactError
from .config import Params
from .io import load_torch, save_torch
from .masks import Mask
from .unet import UNet, build_unet

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


def new_model(params: Params) -> UNet:
    return build_unet(params.model, params.data.channels, params.data.image_size)


def save_ticket(path: Path, model: nn.Module, ema: nn.Module, mask: Optional[Mask], **meta) -> None:
    """A trained network: raw weights (pruning reads them), EMA weights (sampling reads them), the
    mask it was trained under (None for the dense run)."""
    save_torch({"model": model.state_dict(), "ema": ema.state_dict(),
                "mask": mask.state_dict() if mask is not None else None, "meta": meta}, path)


def load_ticket(path: Path, params: Params, device: torch.device | str = "cpu"):
    """(model, ema, mask or None, meta) from `save_ticket`'s file."""
    state = load_torch(path, map_location=device)
    model, ema = new_model(params).to(device), new_model(params).to(device)
    try:
        model.load_state_dict(state["model"])
        ema.load_state_dict(state["ema"])
        mask = Mask.from_state_dict(state["mask"]).to(device) if state["mask"] is not None else None
    except (KeyError, TypeError, AttributeError, RuntimeError) as err:
        # readable, but not a ticket of this model (a stray file, or params changed under it)
        raise ArtifactError(path, f"not a ticket of the configured model "
                                  f"({str(err).splitlines()[0][:120] if str(err) else type(err).__name__})") from None
    return model.eval(), ema.eval(), mask, state.get("meta", {})
