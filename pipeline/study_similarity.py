"""Stages that compare the two seeds' tickets: `layer_rates` (the layerwise schedule's per-layer
weights) and `similarity` (the paper's upstream-vs-downstream analysis of every IMP round).

layer_rates reads only the dense runs (round 0), never a pruned round, so the layerwise schedule
depends on nothing it produces (no cycle in the DAG, and `-S sparsity.schedule=layerwise` reuses
init and dense training from cache). It compares them at its own `similarity.oneshot_sparsity`, not
at the last round's, so adding rounds leaves it alone; and it writes one small file per schedule
for prune to depend on, so only layerwise's prune stages see a change in the rates.
"""
from __future__ import annotations


import torch
from tqdm.auto import tqdm

from . import artifacts as A
from .config import SCHEDULES, ConfigError, Params
from .io import load_torch, save_figure, save_json, save_text
from .masks import Mask
from .pruning import prune_round
from .similarity import (EPS, agreement, compare_tickets, forward_layer_order, layer_weights_from_agreement,
                         plot_depth, plot_heatmap, round_fractions, summarize)


def _seed_pair(params: Params) -> tuple[int, int]:
    seeds = params.imp.seeds
    if len(seeds) < 2:
        raise ConfigError(f"params.yaml: imp.seeds = {list(seeds)} is invalid: comparing tickets needs two seeds")
    return seeds[0], seeds[1]


def _input_shape(params: Params) -> tuple[int, int, int]:
    return params.data.channels, params.data.image_size, params.data.image_size


def _raw_weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach() for n, p in model.named_parameters()}


def run_layer_rates(params: Params) -> None:
    """Per-layer weights of the layerwise schedule from the agreement of the two seeds' one-shot
    uniform magnitude masks of their dense nets, at `similarity.oneshot_sparsity`."""
    seeds = _seed_pair(params)
    target = params.similarity.oneshot_sparsity
    masks = {}
    for seed in seeds:
        model, _, _, _ = A.load_ticket(A.train_dir(seed, 0) / "model.pt", params)
        dense = Mask.dense(model, params.sparsity.include, params.sparsity.exclude)
        masks[seed] = prune_round(_raw_weights(model), dense, "uniform", target)
    order = [n for n in forward_layer_order(model, _input_shape(params)) if n in dense.tensors]
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
    out = A.layer_rates_path().parent
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
        save_json({"schedule": schedule, **needs}, A.schedule_rates_path(schedule))
    save_figure(_plot_rates(order, preview, uniform, params, seeds), out / "rates.png")
    lo, hi = min(preview.values()), max(preview.values())
    tqdm.write(f"layer_rates: {metric} agreement of seeds {seeds[0]}/{seeds[1]} at {target:.0%} sparsity; "
               f"round-1 layer prune fractions {lo:.1%}..{hi:.1%} (uniform {rate:.0%})")


def _plot_rates(order, preview, uniform, params: Params, seeds):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = torch.arange(len(order)).numpy()
    fig, ax = plt.subplots(figsize=(max(6.0, 0.28 * len(order) + 2), 4.2))
    ax.bar(x - 0.2, [uniform[n] * 100 for n in order], width=0.4, label="uniform")
    ax.bar(x + 0.2, [preview[n] * 100 for n in order], width=0.4,
           label=f"layerwise ({params.similarity.metric}, strength {params.similarity.strength:g})")
    ax.set_xticks(x, order, rotation=90, fontsize=6)
    ax.set_xlabel("prunable layer (forward order)")
    ax.set_ylabel("weights removed in round 1 (% of the layer)")
    ax.set_title(f"Per-layer pruning of round 1 at equal global count (rate {params.sparsity.rate:g}); "
                 f"agreement of seeds {seeds[0]} vs {seeds[1]}", fontsize=9)
    ax.legend(fontsize=8)
    return fig


def run_similarity(params: Params) -> None:
    """Compare the two seeds' tickets of every IMP round, layer by layer in forward order."""
    import pandas as pd

    a, b = _seed_pair(params)
    if not params.imp.rounds:
        raise ConfigError("params.yaml: imp.rounds is empty: the similarity analysis needs at least one IMP round")
    frames, labels, order, sizes = [], {}, None, None
    for r in params.imp.rounds:
        masks = [Mask.from_state_dict(load_torch(A.prune_dir(s, r.k) / "mask.pt")) for s in (a, b)]
        models = [A.load_ticket(A.train_dir(s, r.k) / "model.pt", params)[0] for s in (a, b)]
        if order is None:
            order = forward_layer_order(models[0], _input_shape(params))
            sizes = masks[0].total_counts()
        df = compare_tickets(masks[0], masks[1], _raw_weights(models[0]), _raw_weights(models[1]), order)
        df.insert(0, "round", r.k)
        frames.append(df)
        labels[r.k] = f"round {r.k} ({masks[0].sparsity():.0%} sparse)"
    df = pd.concat(frames, ignore_index=True)
    out = A.similarity_dir()
    save_text(df.to_csv(index=False), out / "similarity.csv")
    summary = summarize(df, "kappa", sizes, seeds=(a, b))
    summary.update(schedule=params.sparsity.schedule, rewind=params.rewind.mode,
                   round_labels={str(k): label for k, label in labels.items()})
    save_json(summary, out / "summary.json")
    title = f"seeds {a} vs {b}, {params.sparsity.schedule} schedule, rewind to {params.rewind.mode}"
    save_figure(plot_heatmap(df, "kappa", title=title, round_labels=labels), out / "heatmap.png")
    save_figure(plot_depth(df, ("kappa", "jaccard"), title=title, round_labels=labels), out / "depth.png")
    tqdm.write(f"similarity: {summary['finding']}")
