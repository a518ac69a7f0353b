"""A trained network on disk: raw weights, EMA weights and the mask it was trained under."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch
from torch import nn

from pipeline.core.config import Params
from pipeline.core.errors import ArtifactError
from pipeline.core.io import load_torch, save_torch
from pipeline.ddpm.unet import UNet, build_unet
from pipeline.sparsity.masks import Mask


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
