"""Params rules that need the U-Net's layer shapes, read off a parameter-free (meta-device) model.

They sit here, above the config layer, because they need the model and the pruning arithmetic. The
stages that prune, `lth-diffusion check` and `lth-diffusion repro` run them (through
`pipeline.app.params`), with the same one-line `ConfigError`s as the config's own rules.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any

import torch

from pipeline.core.config import ConfigError, ModelConfig, Params, printable
from pipeline.ddpm.unet import build_unet
from pipeline.sparsity.masks import prunable_names
from pipeline.sparsity.pruning import layerwise_counts, uniform_counts


@lru_cache(maxsize=8)
def meta_unet(model: ModelConfig, channels: int, image_size: int):
    """The configured U-Net on the 'meta' device: every shape, no memory, built in milliseconds."""
    with torch.device("meta"):
        return build_unet(model, channels, image_size)


def _invalid(key: str, value: Any, allowed: str) -> ConfigError:
    return ConfigError(printable(f"params.yaml: {key} = {value!r} is invalid: {allowed}"))


def prunable_counts(params: Params) -> dict[str, int]:
    """Weights per prunable tensor; sparsity.include/exclude must leave at least one."""
    net = meta_unet(params.model, params.data.channels, params.data.image_size)
    inc, exc = params.sparsity.include, params.sparsity.exclude
    shapes = dict(net.named_parameters())
    kept = {n: shapes[n].numel() for n in prunable_names(net, inc, exc)}
    if not kept:
        raise _invalid("sparsity.include", list(inc),
                       f"with sparsity.exclude {list(exc)} no conv/linear weight is prunable "
                       f"(names look like {prunable_names(net)[-1]!r})")
    return kept


def check_layerwise_cap(params: Params, kept: dict[str, int], rounds: int) -> None:
    """Each of `rounds` layerwise rounds must be able to remove sparsity.rate of the survivors with
    no layer losing more than similarity.max_layer_rate of its own."""
    cap = params.similarity.max_layer_rate
    for r in range(1, rounds + 1):
        removed = uniform_counts(kept, params.sparsity.rate)
        try:
            layerwise_counts(kept, {n: 1.0 for n in kept}, sum(removed.values()), cap)
        except ValueError:
            raise _invalid("similarity.max_layer_rate", cap,
                           f"too low for round {r} to remove sparsity.rate = {params.sparsity.rate} of the "
                           f"surviving weights (each layer may lose at most {cap} of its own)") from None
        kept = {n: kept[n] - removed[n] for n in kept}


def check_prunable(params: Params) -> None:
    """The whole study's shape rules: a prunable layer, and every layerwise round within the cap (the
    layer_rates stage previews one layerwise round whatever the schedule)."""
    rounds = len(params.imp.rounds) if params.sparsity.schedule == "layerwise" else 1
    check_layerwise_cap(params, prunable_counts(params), rounds)
