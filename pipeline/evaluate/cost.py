"""What a ticket costs: multiply-accumulates of one forward pass, and bytes on disk.

MACs count conv and linear layers only (attention's QK^T and AV products and the normalisations
are excluded, dense or not): each layer contributes (kept weights) x (output positions) -- H_out*W_out
for a conv, the number of rows for a linear -- for one image. A conv weight holds
out x in/groups x kh x kw entries, so grouped convolutions need no special case.

Storage: a compressed ticket keeps, for each masked tensor, a packed bitmask (1 bit per weight) and
the kept values only; every other tensor as it is. At sparsity s a masked fp32 tensor of N weights
takes N/8 + 4N(1-s) bytes instead of 4N.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Mapping, Optional, Sequence

import numpy as np
import torch
from torch import nn

from pipeline.core.io import load_torch, save_torch
from pipeline.sparsity.masks import Mask

FORMAT = "lth-compressed-ticket"
VERSION = 1


@torch.no_grad()
def count_macs(model: nn.Module, mask: Optional[Mask], input_shape: Sequence[int],
               extra_inputs: Sequence = ()) -> tuple[int, int]:
    """(dense MACs, MACs with only the mask's kept weights) of one forward of `model` on a zero
    input of `input_shape` (batch 1), called as model(x, *extra_inputs) -- e.g. a U-Net's timestep.
    Layers the mask does not name count as fully kept."""
    if input_shape[0] != 1:
        raise ValueError(f"count_macs counts one image: input_shape must start with 1, got {tuple(input_shape)}")
    kept = mask.kept_counts() if mask is not None else {}
    totals = {"dense": 0, "masked": 0}

    def hook(name: str):
        def fn(module: nn.Module, _inputs, output: torch.Tensor) -> None:
            if isinstance(module, nn.Conv2d):
                positions = output.shape[-2] * output.shape[-1]
            else:  # Linear: one dot product per row of the output
                positions = output.numel() // module.out_features
            totals["dense"] += module.weight.numel() * positions
            totals["masked"] += kept.get(f"{name}.weight", module.weight.numel()) * positions
        return fn

    handles = [m.register_forward_hook(hook(n)) for n, m in model.named_modules()
               if isinstance(m, (nn.Conv2d, nn.Linear))]
    device = next(model.parameters()).device
    was_training = model.training
    try:
        model.eval()
        model(torch.zeros(tuple(input_shape), device=device), *extra_inputs)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return int(totals["dense"]), int(totals["masked"])


def _compress(state_dict: Mapping[str, torch.Tensor], mask: Optional[Mask]) -> dict:
    names = list(mask) if mask is not None else []
    missing = [n for n in names if n not in state_dict]
    if missing:
        raise KeyError(f"mask names tensors the state dict lacks: {missing[:3]}")
    masked, dense = {}, {}
    for name, tensor in state_dict.items():
        t = tensor.detach().cpu()
        if name not in names:
            dense[name] = t.clone()  # clone: a view would drag its whole storage into the file
            continue
        m = mask[name].detach().cpu()
        if m.shape != t.shape:
            raise ValueError(f"mask for {name} has shape {tuple(m.shape)}, the tensor {tuple(t.shape)}")
        flat_t, flat_m = t.flatten(), m.flatten()
        if bool((flat_t[~flat_m] != 0).any()):
            raise ValueError(f"{name} has non-zero pruned weights: apply the mask before compressing")
        masked[name] = {"shape": list(t.shape),
                        "bits": torch.from_numpy(np.packbits(flat_m.numpy())),
                        "values": flat_t[flat_m].clone()}
    return {"format": FORMAT, "version": VERSION, "order": list(state_dict), "masked": masked, "dense": dense}


def save_compressed_ticket(state_dict: Mapping[str, torch.Tensor], mask: Optional[Mask],
                           path: str | Path) -> int:
    """Write the compressed ticket to `path` (atomically); return its size in bytes."""
    blob = _compress(state_dict, mask)
    path = save_torch(blob, path)
    return path.stat().st_size


def load_compressed_ticket(path: str | Path) -> dict[str, torch.Tensor]:
    """The dense state dict back, in the original key order. Pruned entries come back as +0.0
    (a pruned -0.0 is the same value; torch.equal holds for every tensor)."""
    blob = load_torch(path)
    if blob.get("format") != FORMAT or blob.get("version") != VERSION:
        raise ValueError(f"{path}: not a {FORMAT} v{VERSION} file")
    out = {}
    for name in blob["order"]:
        if name in blob["dense"]:
            out[name] = blob["dense"][name]
            continue
        entry = blob["masked"][name]
        numel = int(np.prod(entry["shape"])) if entry["shape"] else 1
        keep = torch.from_numpy(np.unpackbits(entry["bits"].numpy(), count=numel).astype(bool))
        values = entry["values"]
        flat = torch.zeros(numel, dtype=values.dtype)
        flat[keep] = values
        out[name] = flat.view(entry["shape"])
    return out


def torch_save_bytes(state_dict: Mapping[str, torch.Tensor]) -> int:
    """Bytes of a plain torch.save of the state dict: what the dense network costs on disk."""
    buf = io.BytesIO()
    torch.save({n: t.detach().cpu().clone() for n, t in state_dict.items()}, buf)
    return buf.tell()
