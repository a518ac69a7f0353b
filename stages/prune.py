"""DVC stage 'prune': mask k = mask k-1 minus the lowest-scoring survivors of round k-1's trained
weights (the dense net for k = 1); how many per layer is sparsity.schedule.

Usage: python -m stages.prune <seed> <k>
"""
from __future__ import annotations

import torch
from tqdm.auto import tqdm

from pipeline.app.stage import run_stage
from pipeline.core import paths
from pipeline.core.config import ConfigError, Params
from pipeline.core.io import load_json, save_json, save_torch
from pipeline.sparsity import tickets
from pipeline.sparsity.masks import Mask
from pipeline.sparsity.pruning import prune_round
from pipeline.sparsity.rules import prunable_counts
from pipeline.sparsity.rewind import seed_for


def run_prune(params: Params, seed: int, k: int) -> None:
    prunable_counts(params)  # include/exclude must leave a layer: one line, before any artifact is read
    model, _, mask, _ = tickets.load_ticket(paths.train_dir(seed, k - 1) / "model.pt", params)
    if mask is None:  # round 1 prunes the dense net
        mask = Mask.dense(model, params.sparsity.include, params.sparsity.exclude)
    weights = dict(model.named_parameters())
    # what the schedule needs from the layer_rates stage (dvc.yaml: a file per schedule, of which
    # only layerwise's ever changes; the others need nothing)
    extra = {}
    if params.sparsity.schedule == "layerwise":
        rates = load_json(paths.schedule_rates_path("layerwise"))
        extra = {"layer_weights": rates["layer_weights"], "max_layer_rate": rates["max_layer_rate"]}
    try:
        new = prune_round(weights, mask, params.sparsity.schedule, params.sparsity.rate,
                          generator=torch.Generator().manual_seed(seed_for(seed, k)), **extra)
    except ValueError as err:
        if not extra:
            raise
        # the layerwise cap (from the rates file) cannot remove this round's share
        raise ConfigError(f"params.yaml: similarity.max_layer_rate = {extra['max_layer_rate']} is invalid: "
                          f"round {k} cannot remove sparsity.rate = {params.sparsity.rate} of the survivors ({err})")
    assert new.is_subset_of(mask), "a pruned mask must never revive a weight"
    out = paths.prune_dir(seed, k)
    save_torch(new.state_dict(), out / "mask.pt")
    report = new.report()
    report.update(seed=seed, round=k, schedule=params.sparsity.schedule, rate=params.sparsity.rate)
    save_json(report, out / "mask.json")
    tqdm.write(f"prune seed {seed} round {k} ({params.sparsity.schedule}): "
               f"{report['kept']:,}/{report['total']:,} prunable weights kept, sparsity {report['sparsity']:.2%}")


if __name__ == "__main__":
    run_stage(run_prune, "seed", "k")
