"""`Mask`: which weights of a model survive.

A mapping from parameter name to a boolean tensor of the parameter's shape, kept on the weights'
device. Only conv and linear weights are prunable; biases and normalisation gains never are
(pruning a GroupNorm gain kills a channel).
"""
from __future__ import annotations

from fnmatch import fnmatch
from typing import Iterable, Iterator

import torch
from torch import nn

PRUNABLE_MODULES = (nn.Conv2d, nn.Linear)


def prunable_names(model: nn.Module, include: Iterable[str] = ("*.weight",),
                   exclude: Iterable[str] = ()) -> list[str]:
    """Conv/linear weight names matching an include pattern and no exclude pattern, in model order."""
    include, exclude = tuple(include), tuple(exclude)
    names = []
    for mod_name, module in model.named_modules():
        if not isinstance(module, PRUNABLE_MODULES):
            continue
        name = f"{mod_name}.weight" if mod_name else "weight"
        if any(fnmatch(name, p) for p in include) and not any(fnmatch(name, p) for p in exclude):
            names.append(name)
    return names


class Mask:
    def __init__(self, tensors: dict[str, torch.Tensor]):
        self.tensors = {name: t.bool() for name, t in tensors.items()}

    # -- construction -----------------------------------------------------------------------
    @classmethod
    def dense(cls, model: nn.Module, include: Iterable[str] = ("*.weight",),
              exclude: Iterable[str] = ()) -> "Mask":
        params = dict(model.named_parameters())
        names = prunable_names(model, include, exclude)
        if not names:
            raise ValueError(f"no prunable weights match include={list(include)} exclude={list(exclude)}")
        return cls({n: torch.ones_like(params[n], dtype=torch.bool) for n in names})

    def clone(self) -> "Mask":
        return Mask({n: t.clone() for n, t in self.tensors.items()})

    def to(self, device: torch.device | str) -> "Mask":
        return Mask({n: t.to(device) for n, t in self.tensors.items()})

    # -- queries ----------------------------------------------------------------------------
    def __iter__(self) -> Iterator[str]:
        return iter(self.tensors)

    def __getitem__(self, name: str) -> torch.Tensor:
        return self.tensors[name]

    def __len__(self) -> int:
        return len(self.tensors)

    def names(self) -> list[str]:
        return list(self.tensors)

    def kept_counts(self) -> dict[str, int]:
        # one host sync for all layers
        counts = torch.stack([t.sum() for t in self.tensors.values()]).tolist()
        return dict(zip(self.tensors, counts))

    def total_counts(self) -> dict[str, int]:
        return {n: t.numel() for n, t in self.tensors.items()}

    def kept(self) -> int:
        return sum(self.kept_counts().values())

    def total(self) -> int:
        return sum(self.total_counts().values())

    def sparsity(self) -> float:
        return 1.0 - self.kept() / self.total()

    def is_subset_of(self, other: "Mask") -> bool:
        """True when every weight kept here is also kept in `other` (masks only shrink)."""
        if set(self.tensors) != set(other.tensors):
            return False
        return all(bool((a & ~other[n].to(a.device)).any().logical_not()) for n, a in self.tensors.items())

    def report(self) -> dict:
        kept, total = self.kept_counts(), self.total_counts()
        layers = {n: {"total": total[n], "kept": kept[n], "sparsity": 1.0 - kept[n] / total[n]}
                  for n in self.tensors}
        k, t = sum(kept.values()), sum(total.values())
        return {"total": t, "kept": k, "sparsity": 1.0 - k / t, "layers": layers}

    # -- enforcement ------------------------------------------------------------------------
    def bind(self, model: nn.Module) -> "BoundMask":
        return BoundMask(self, model)

    def apply_(self, model: nn.Module) -> nn.Module:
        """Zero the pruned weights of `model` in place."""
        self.bind(model).apply_()
        return model

    # -- persistence ------------------------------------------------------------------------
    def state_dict(self) -> dict[str, torch.Tensor]:
        return {n: t.detach().cpu() for n, t in self.tensors.items()}

    @classmethod
    def from_state_dict(cls, state: dict[str, torch.Tensor]) -> "Mask":
        return cls(dict(state))


def strided_like(mask: torch.Tensor, param: torch.Tensor) -> torch.Tensor:
    """`mask` as a 0/1 tensor of `param`'s device, dtype and strides (memory format)."""
    return torch.empty_like(param, memory_format=torch.preserve_format).copy_(mask)


class BoundMask:
    """A mask tied to one model's parameters, enforced with fused foreach kernels on their device."""

    def __init__(self, mask: Mask, model: nn.Module):
        params = dict(model.named_parameters())
        missing = [n for n in mask if n not in params]
        if missing:
            raise KeyError(f"mask names parameters the model lacks: {missing[:3]}")
        self.params = [params[n] for n in mask]
        # factors take the parameters' strides (channels_last after train()'s conversion): with
        # mixed strides _foreach_mul_ leaves its fused fast path for one kernel per tensor
        self.factors = [strided_like(mask[n], p) for n, p in zip(mask, self.params)]

    @torch.no_grad()
    def apply_(self) -> None:
        torch._foreach_mul_([p.data for p in self.params], self.factors)

    @torch.no_grad()
    def mask_grads_(self) -> None:
        grads = [p.grad for p in self.params if p.grad is not None]
        if len(grads) == len(self.params):
            torch._foreach_mul_(grads, self.factors)
        else:
            for p, f in zip(self.params, self.factors):
                if p.grad is not None:
                    p.grad.mul_(f)
