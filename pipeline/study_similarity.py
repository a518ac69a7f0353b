"""Stages that compare the two seeds' tickets: `layer_rates` (the layerwise schedule's per-layer
weights) and `similarity` (the paper's upstream-vs-downstream analysis of every IMP round, tested
against chance, matched resolution, fan-in and the agreement each ticket's own start's magnitudes
would give: `similarity_stats`).

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
from .similarity import (EPS, agreement, block_rank, block_resolutions, compare_tickets, fan_in,
                         forward_layer_order, layer_weights_from_agreement, magnitude_mask, round_fractions,
                         start_agreement)
from .similarity_plots import plot_claims, plot_depth, plot_heatmap
from .similarity_stats import summarize


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


def _baseline_start(params: Params, seed: int) -> tuple[dict[str, torch.Tensor] | None, str]:
    """The weights a seed's tickets restart from, whose magnitudes alone could explain agreement,
    and a phrase naming them (None and the reason when there is no such start)."""
    mode = params.rewind.mode
    if mode == "checkpoint":
        return load_torch(A.train_dir(seed, 0) / "rewind.pt"), (
            f"theta_k (step {params.rewind.step} of each seed's dense run, artifacts/imp/s<seed>/r0/train/rewind.pt)")
    if mode == "init":
        return load_torch(A.init_dir() / "theta0.pt"), "theta0 (artifacts/init/theta0.pt, shared by both seeds)"
    return None, ("rewind.mode=reinit: every ticket restarts from a fresh random draw, so there is no shared "
                  "starting point whose magnitudes could explain the agreement")


def run_similarity(params: Params) -> None:
    """Compare the two seeds' tickets of every IMP round, layer by layer in forward order, and
    test the claims of summary.json against chance, position, resolution, fan-in and magnitude."""
    import pandas as pd

    a, b = _seed_pair(params)
    if not params.imp.rounds:
        raise ConfigError("params.yaml: imp.rounds is empty: the similarity analysis needs at least one IMP round")
    metric = params.similarity.metric
    starts = {s: _baseline_start(params, s) for s in (a, b)}
    source = starts[a][1]
    frames, base_rows, pair_rows, labels, order, sizes, fan_ins, resolutions = [], [], [], {}, None, None, None, None
    for r in params.imp.rounds:
        masks = [Mask.from_state_dict(load_torch(A.prune_dir(s, r.k) / "mask.pt")) for s in (a, b)]
        models = [A.load_ticket(A.train_dir(s, r.k) / "model.pt", params)[0] for s in (a, b)]
        if order is None:
            order = forward_layer_order(models[0], _input_shape(params))
            resolutions = block_resolutions(models[0], _input_shape(params))
            sizes = masks[0].total_counts()
            fan_ins = {n: fan_in(t.shape) for n, t in masks[0].tensors.items()}
        df = compare_tickets(masks[0], masks[1], _raw_weights(models[0]), _raw_weights(models[1]), order)
        df.insert(0, "round", r.k)
        frames.append(df)
        labels[r.k] = f"round {r.k} ({masks[0].sparsity():.0%} sparse)"
        if starts[a][0] is not None:
            # the start's magnitude mask at exactly each ticket's per-layer kept counts
            for s, m in zip((a, b), masks):
                base_rows += [(r.k, s, n, v) for n, v in start_agreement(m, starts[s][0], metric).items()]
            own = [magnitude_mask(starts[s][0], m.kept_counts()) for s, m in zip((a, b), masks)]
            pair_rows += [(r.k, n, v) for n, v in agreement(own[0], own[1], metric).items()]
    df = pd.concat(frames, ignore_index=True)
    baseline = pd.DataFrame(base_rows, columns=["round", "seed", "layer", "value"]) if base_rows else None
    start_pair = pd.DataFrame(pair_rows, columns=["round", "layer", "value"]) if pair_rows else None
    out = A.similarity_dir()
    save_text(df.to_csv(index=False), out / "similarity.csv")
    if baseline is not None:
        save_text(baseline.assign(metric=metric).to_csv(index=False), out / "baseline.csv")
    else:  # never leave another mode's baseline beside this summary
        (out / "baseline.csv").unlink(missing_ok=True)
    summary = summarize(df, metric, sizes, seeds=(a, b), fan_in=fan_ins, resolutions=resolutions,
                        baseline=baseline, start_pair=start_pair, baseline_source=source,
                        resamples=params.similarity.resamples)
    summary.update(schedule=params.sparsity.schedule, rewind=params.rewind.mode,
                   round_labels={str(k): label for k, label in labels.items()},
                   block_resolution={blk: resolutions[blk] for blk in sorted(resolutions, key=block_rank)},
                   layer_fan_in=fan_ins)
    save_json(summary, out / "summary.json")
    title = f"seeds {a} vs {b}, {params.sparsity.schedule} schedule, rewind to {params.rewind.mode}"
    save_figure(plot_heatmap(df, metric, title=title, round_labels=labels), out / "heatmap.png")
    save_figure(plot_depth(df, (metric, "jaccard") if metric == "kappa" else ("jaccard", "kappa"), title=title,
                           round_labels=labels), out / "depth.png")
    save_figure(plot_claims(summary, title=f"{title}; {labels[params.imp.rounds[-1].k]}"), out / "blocks.png")
    tqdm.write(f"similarity: {summary['finding']}")
