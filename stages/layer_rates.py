"""DVC stage 'layer_rates': the layerwise schedule's per-layer weights, from the agreement of the
first two seeds' one-shot uniform magnitude masks of their dense nets at similarity.oneshot_sparsity.

It reads only the dense runs (round 0), never a pruned round, so the layerwise schedule depends on
nothing it produces (no cycle in the DAG, and `-S sparsity.schedule=layerwise` reuses init and
dense training from cache). It compares them at its own `similarity.oneshot_sparsity`, not at the
last round's, so adding rounds leaves it alone; and it writes one small file per schedule for prune
to depend on, so only layerwise's prune stages see a change in the rates.

Usage: python -m stages.layer_rates
"""
from __future__ import annotations

from tqdm.auto import tqdm

from pipeline.app.stage import run_stage
from pipeline.core import paths
from pipeline.core.config import SCHEDULES, ConfigError, Params
from pipeline.core.io import save_figure, save_json
from pipeline.similarity.agreement import (EPS, agreement, forward_layer_order, layer_weights_from_agreement,
                                           raw_weights, round_fractions, seed_pair)
from pipeline.similarity.plots import plot_rates
from pipeline.sparsity import tickets
from pipeline.sparsity.masks import Mask
from pipeline.sparsity.pruning import prune_round
from pipeline.sparsity.rules import check_layerwise_cap, prunable_counts


def run_layer_rates(params: Params) -> None:
    """Per-layer weights of the layerwise schedule from the agreement of the two seeds' one-shot
    uniform magnitude masks of their dense nets, at `similarity.oneshot_sparsity`."""
    check_layerwise_cap(params, prunable_counts(params), rounds=1)  # the one round previewed here
    seeds = seed_pair(params)
    target = params.similarity.oneshot_sparsity
    masks = {}
    for seed in seeds:
        model, _, _, _ = tickets.load_ticket(paths.train_dir(seed, 0) / "model.pt", params)
        dense = Mask.dense(model, params.sparsity.include, params.sparsity.exclude)
        masks[seed] = prune_round(raw_weights(model), dense, "uniform", target)
    order = [n for n in forward_layer_order(model, params.image_shape) if n in dense.tensors]
    metric, strength = params.similarity.metric, params.similarity.strength
    agree = agreement(masks[seeds[0]], masks[seeds[1]], metric)
    agree = {n: agree[n] for n in order}
    weights = layer_weights_from_agreement(agree, strength)
    kept = dense.total_counts()
    rate, cap = params.sparsity.rate, params.similarity.max_layer_rate
    try:
        preview = round_fractions(kept, rate, weights, cap)
    except ValueError:
        raise ConfigError(f"params.yaml: similarity.max_layer_rate = {cap} is invalid: too low for the layers "
                          f"to remove sparsity.rate = {rate} of all weights in one round") from None
    uniform = round_fractions(kept, rate)
    out = paths.layer_rates_path().parent
    save_json({
        "metric": metric, "strength": strength, "target_sparsity": target,
        "agreement": agree, "weights": weights, "preview": {n: preview[n] for n in order},
        "uniform_preview": {n: uniform[n] for n in order},
        "seeds": list(seeds), "rate": rate, "max_layer_rate": cap, "eps": EPS,
        "source": f"one-shot uniform magnitude masks at similarity.oneshot_sparsity of the dense nets "
                  f"(artifacts/imp/s<seed>/r0/train/model.pt) of seeds {seeds[0]} and {seeds[1]}",
        "agreement_is": "Cohen's kappa" if metric == "kappa" else "Jaccard minus its chance value",
        "weights_are": "(r_l / mean_l r_l) ** strength, r_l = max(1 - agreement_l, eps)",
    }, out / "rates.json")
    for schedule in SCHEDULES:
        needs = {"layer_weights": weights, "max_layer_rate": cap} if schedule == "layerwise" \
            else {"layer_weights": None, "max_layer_rate": None}
        save_json({"schedule": schedule, **needs}, paths.schedule_rates_path(schedule))
    save_figure(plot_rates(order, preview, uniform, params, seeds), out / "rates.png")
    lo, hi = min(preview.values()), max(preview.values())
    tqdm.write(f"layer_rates: {metric} agreement of seeds {seeds[0]}/{seeds[1]} at {target:.0%} sparsity; "
               f"round-1 layer prune fractions {lo:.1%}..{hi:.1%} (uniform {rate:.0%})")


if __name__ == "__main__":
    run_stage(run_layer_rates)
