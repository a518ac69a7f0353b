"""DVC stage 'similarity': the first two seeds' tickets of every IMP round compared layer by layer
in forward order (the paper's upstream-vs-downstream analysis), with the claims of summary.json
tested against chance, position, resolution, fan-in and the agreement each ticket's own start's
magnitudes would give (pipeline.similarity.claims).

Usage: python -m stages.similarity
"""
from __future__ import annotations

import torch
from tqdm.auto import tqdm

from pipeline.app.stage import run_stage
from pipeline.core import paths
from pipeline.core.config import ConfigError, Params
from pipeline.core.io import load_torch, save_figure, save_json, save_text
from pipeline.similarity.agreement import (agreement, block_rank, block_resolutions, compare_tickets, fan_in,
                                           forward_layer_order, magnitude_mask, raw_weights, seed_pair,
                                           start_agreement)
from pipeline.similarity.claims import summarize
from pipeline.similarity.plots import plot_claims, plot_depth, plot_heatmap
from pipeline.sparsity import tickets
from pipeline.sparsity.masks import Mask


def _baseline_start(params: Params, seed: int) -> tuple[dict[str, torch.Tensor] | None, str]:
    """The weights a seed's tickets restart from, whose magnitudes alone could explain agreement,
    and a phrase naming them (None and the reason when there is no such start)."""
    mode = params.rewind.mode
    if mode == "checkpoint":
        return load_torch(paths.train_dir(seed, 0) / "rewind.pt"), (
            f"theta_k (step {params.rewind.step} of each seed's dense run, artifacts/imp/s<seed>/r0/train/rewind.pt)")
    if mode == "init":
        return load_torch(paths.init_dir() / "theta0.pt"), "theta0 (artifacts/init/theta0.pt, shared by both seeds)"
    return None, ("rewind.mode=reinit: every ticket restarts from a fresh random draw, so there is no shared "
                  "starting point whose magnitudes could explain the agreement")


def run_similarity(params: Params) -> None:
    """Compare the two seeds' tickets of every IMP round, layer by layer in forward order, and
    test the claims of summary.json against chance, position, resolution, fan-in and magnitude."""
    import pandas as pd

    a, b = seed_pair(params)
    if not params.imp.rounds:
        raise ConfigError("params.yaml: imp.rounds is empty: the similarity analysis needs at least one IMP round")
    metric = params.similarity.metric
    starts = {s: _baseline_start(params, s) for s in (a, b)}
    source = starts[a][1]
    frames, base_rows, pair_rows, labels, order, sizes, fan_ins, resolutions = [], [], [], {}, None, None, None, None
    for r in params.imp.rounds:
        masks = [Mask.from_state_dict(load_torch(paths.prune_dir(s, r.k) / "mask.pt")) for s in (a, b)]
        models = [tickets.load_ticket(paths.train_dir(s, r.k) / "model.pt", params)[0] for s in (a, b)]
        if order is None:
            order = forward_layer_order(models[0], params.image_shape)
            resolutions = block_resolutions(models[0], params.image_shape)
            sizes = masks[0].total_counts()
            fan_ins = {n: fan_in(t.shape) for n, t in masks[0].tensors.items()}
        df = compare_tickets(masks[0], masks[1], raw_weights(models[0]), raw_weights(models[1]), order)
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
    out = paths.similarity_dir()
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


if __name__ == "__main__":
    run_stage(run_similarity)
