"""DVC stage 'similarity': the tickets of every pair of IMP seeds (3 seeds: 3 pairs) compared in
every IMP round, layer by layer in forward order (the paper's upstream-vs-downstream analysis), with
the claims of summary.json computed per ticket pair and averaged over pairs, tested against chance,
position, resolution, fan-in and the agreement each ticket's own start's magnitudes predict
(pipeline.similarity.claims).

Writes similarity.csv (one row per pair, round, layer and metric), baseline.csv (each ticket against
its own start's magnitude mask), magnitude.csv (per pair and layer: observed kappa, the kappa
predicted under independence given each start's magnitude-rank bins and the excess, and beside them
the binary-mask chain kappa(A,M_A) kappa(M_A,M_B) kappa(M_B,B)), summary.json and three figures.

Usage: python -m stages.similarity
"""
from __future__ import annotations

import torch
from tqdm.auto import tqdm

from pipeline.app.stage import run_stage
from pipeline.core import paths
from pipeline.core.config import ConfigError, Params
from pipeline.core.io import load_torch, save_figure, save_json, save_text
from pipeline.similarity.agreement import (agreement, all_seed_pairs, block_rank, block_resolutions,
                                           compare_tickets, fan_in, forward_layer_order, layer_type,
                                           magnitude_mask, pair_label, raw_weights)
from pipeline.report.text import similarity_finding
from pipeline.similarity.magnitude import magnitude_chain, predicted_agreement
from pipeline.similarity.summary import POPULATION_PER_SEED, summarize
from pipeline.similarity.plots import plot_claims, plot_depth, plot_heatmap
from pipeline.sparsity import tickets
from pipeline.sparsity.masks import Mask
from pipeline.sparsity.rewind import theta0_for


def _baseline_start(params: Params, seed: int) -> tuple[dict[str, torch.Tensor] | None, str]:
    """The weights a seed's tickets restart from, whose magnitudes alone could explain agreement,
    and a phrase naming them (None and the reason when there is no such start)."""
    mode = params.rewind.mode
    if mode == "checkpoint":
        return load_torch(paths.train_dir(seed, 0) / "rewind.pt"), (
            f"theta_k (step {params.rewind.step} of each seed's dense run, artifacts/imp/s<seed>/r0/train/rewind.pt)")
    if mode == "init":
        if params.model.theta0 == "shared":
            return theta0_for(params, seed), "theta0 (artifacts/init/theta0.pt, shared by every seed)"
        return theta0_for(params, seed), "each seed's own theta0 (model.theta0 = per_seed)"
    return None, ("rewind.mode=reinit: every ticket restarts from a fresh random draw, so there is no shared "
                  "starting point whose magnitudes could explain the agreement")


def run_similarity(params: Params) -> None:
    """Compare the tickets of every pair of IMP seeds in every IMP round, layer by layer in forward
    order, and test the claims of summary.json with the ticket pair as the unit."""
    import pandas as pd

    pairs = all_seed_pairs(params)
    seeds = list(params.imp.seeds)
    if not params.imp.rounds:
        raise ConfigError("params.yaml: imp.rounds is empty: the similarity analysis needs at least one IMP round")
    metric = params.similarity.metric
    starts = {s: _baseline_start(params, s) for s in seeds}
    source = starts[seeds[0]][1]
    base_metrics = list(dict.fromkeys(("kappa", metric)))  # kappa feeds the magnitude claim, metric the figure
    frames, base_rows, pair_rows, pred_rows, labels = [], [], [], [], {}
    bins = params.similarity.magnitude_bins
    order = sizes = fan_ins = resolutions = types = None
    for r in params.imp.rounds:
        masks = {s: Mask.from_state_dict(load_torch(paths.prune_dir(s, r.k) / "mask.pt")) for s in seeds}
        weights = {}
        for s in seeds:
            model = tickets.load_ticket(paths.train_dir(s, r.k) / "model.pt", params)[0]
            if order is None:
                order = forward_layer_order(model, params.image_shape)
                resolutions = block_resolutions(model, params.image_shape)
            weights[s] = raw_weights(model)
        first = masks[seeds[0]]
        if sizes is None:
            sizes = first.total_counts()
            fan_ins = {n: fan_in(t.shape) for n, t in first.tensors.items()}
            types = {n: layer_type(n, t.shape) for n, t in first.tensors.items()}
        for a, b in tqdm(pairs, desc=f"similarity round {r.k}", leave=False):
            df = compare_tickets(masks[a], masks[b], weights[a], weights[b], order)
            df.insert(0, "round", r.k)
            df.insert(0, "pair", pair_label(a, b))
            frames.append(df)
        labels[r.k] = f"round {r.k} ({first.sparsity():.0%} sparse in seed {seeds[0]})"
        if starts[seeds[0]][0] is not None:
            # each start's magnitude mask at exactly its own ticket's per-layer kept counts
            own = {s: magnitude_mask(starts[s][0], masks[s].kept_counts()) for s in seeds}
            for s in seeds:
                for m in base_metrics:
                    base_rows += [(r.k, s, n, m, v) for n, v in agreement(masks[s], own[s], m).items()]
            for a, b in pairs:
                pair_rows += [(pair_label(a, b), r.k, n, v) for n, v in agreement(own[a], own[b], "kappa").items()]
                # the null: independence given each ticket's own start's magnitude-rank bins
                pred = predicted_agreement(masks[a], starts[a][0], masks[b], starts[b][0], bins, masks[a].names())
                pred_rows += [(pair_label(a, b), r.k, n, v) for n, v in pred.items()]
    df = pd.concat(frames, ignore_index=True)
    baseline = pd.DataFrame(base_rows, columns=["round", "seed", "layer", "metric", "value"]) if base_rows else None
    start_pair = pd.DataFrame(pair_rows, columns=["pair", "round", "layer", "value"]) if pair_rows else None
    predicted = pd.DataFrame(pred_rows, columns=["pair", "round", "layer", "value"]) if pred_rows else None
    out = paths.similarity_dir()
    save_text(df.to_csv(index=False), out / "similarity.csv")
    if baseline is not None:
        save_text(baseline.to_csv(index=False), out / "baseline.csv")
    else:  # never leave another mode's baseline beside this summary
        (out / "baseline.csv").unlink(missing_ok=True)
    summary = summarize(df, metric, sizes, seeds=seeds, fan_in=fan_ins, resolutions=resolutions,
                        baseline=baseline, start_pair=start_pair, predicted=predicted, baseline_source=source,
                        resamples=params.similarity.resamples, layer_types=types, theta0=params.model.theta0)
    summary["finding"] = similarity_finding(summary, POPULATION_PER_SEED)  # the words live in the report's text
    if baseline is not None:
        kappa = df[df["metric"] == "kappa"].pivot_table(index=["round", "layer"], columns="pair", values="value")
        chains = []
        for k in sorted(labels):
            own = baseline[(baseline["round"] == k) & (baseline["metric"] == "kappa")].pivot(
                index="layer", columns="seed", values="value")
            sp = start_pair[start_pair["round"] == k].pivot(index="layer", columns="pair", values="value")
            pr = predicted[predicted["round"] == k].pivot(index="layer", columns="pair", values="value")
            ab = kappa.loc[k]
            ab = ab.reindex([n for n in order if n in ab.index])  # forward order
            chains.append(magnitude_chain(ab, own.reindex(ab.index), sp.reindex(index=ab.index, columns=ab.columns),
                                          pr.reindex(index=ab.index, columns=ab.columns)).assign(round=k))
        save_text(pd.concat(chains, ignore_index=True).to_csv(index=False), out / "magnitude.csv")
    else:
        (out / "magnitude.csv").unlink(missing_ok=True)
    summary.update(schedule=params.sparsity.schedule, rewind=params.rewind.mode,
                   round_labels={str(k): label for k, label in labels.items()},
                   block_resolution={blk: resolutions[blk] for blk in sorted(resolutions, key=block_rank)},
                   layer_fan_in=fan_ins, layer_type=types)
    save_json(summary, out / "summary.json")
    who = f"mean over the {len(pairs)} pairs of seeds {', '.join(map(str, seeds))}" if len(pairs) > 1 else \
        f"seeds {seeds[0]} vs {seeds[1]}"
    title = f"{who}, {params.sparsity.schedule} schedule, rewind to {params.rewind.mode}"
    save_figure(plot_heatmap(df, metric, title=title, round_labels=labels), out / "heatmap.png")
    save_figure(plot_depth(df, (metric, "jaccard") if metric == "kappa" else ("jaccard", "kappa"), title=title,
                           round_labels=labels), out / "depth.png")
    save_figure(plot_claims(summary, title=f"{title}; {labels[params.imp.rounds[-1].k]}"), out / "blocks.png")
    tqdm.write(f"similarity: {summary['finding']}")


if __name__ == "__main__":
    run_stage(run_similarity)
