"""How alike two winning tickets are, layer by layer, in the order the forward pass runs.

The paper's claim (Jiang et al. 2023): two tickets of the same model agree more in upstream blocks
than downstream ones. Here, per prunable layer:

- jaccard:        |A and B| / |A or B| of the kept weights (1 when both keep nothing);
- jaccard_chance: the Jaccard two independent random masks of the same densities p, q would have,
                  pq / (p + q - pq) (the ratio of expectations; exact up to O(1/n));
- kappa:          Cohen's kappa of kept/pruned agreement, (p_o - p_e) / (1 - p_e) with
                  p_e = pq + (1-p)(1-q): 1 identical, ~0 independent, < 0 complementary
                  (1 when both masks are constant and equal, the only case with p_e = 1);
- hamming:        fraction of positions where the masks differ (Early-Bird's mask distance);
- sign_agreement: fraction of the weights kept by both whose trained signs agree
                  (NaN when no weight is kept by both: undefined, and pandas' means skip it);
- cosine:         cosine similarity of the two masked trained weight tensors (0 when either is
                  all zero: no direction to compare).
"""
from __future__ import annotations

import re
from typing import Mapping, Optional, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from .masks import PRUNABLE_MODULES, Mask

METRICS = ("jaccard", "jaccard_chance", "kappa", "hamming", "sign_agreement", "cosine")
COLUMNS = ("layer", "block", "depth", "metric", "value")


# -- where a layer sits -------------------------------------------------------------------------
def forward_layer_order(model: nn.Module, input_shape: Sequence[int], batch: int = 1) -> list[str]:
    """Conv/linear weight names in the order their modules are first called by one forward pass of
    `model(x, t)` on a dummy input of shape (batch, *input_shape) (t = 0), as forward hooks see it."""
    order: list[str] = []
    seen: set[str] = set()

    def hook_for(name: str):
        def hook(module, args, output):
            if name not in seen:
                seen.add(name)
                order.append(name)
        return hook

    handles = [m.register_forward_hook(hook_for(f"{n}.weight" if n else "weight"))
               for n, m in model.named_modules() if isinstance(m, PRUNABLE_MODULES)]
    param = next(model.parameters())
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            x = torch.randn(batch, *input_shape, device=param.device, dtype=param.dtype)
            t = torch.zeros(batch, dtype=torch.long, device=param.device)
            model(x, t)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return order


# Rank of each block kind along the forward pass. The time-embedding MLP runs first and feeds
# every residual block, so it comes first here but has no place on the input -> output path.
_BLOCK_RANK = {"time": 0, "input": 1, "down": 2, "mid": 3, "up": 4, "output": 5}
_BLOCK_PATTERNS = (
    (re.compile(r"^time_embed\."), lambda m: "time"),
    (re.compile(r"^init_conv\."), lambda m: "input"),
    (re.compile(r"^down\.(\d+)\."), lambda m: f"down{m.group(1)}"),
    (re.compile(r"^mid_(block1|attn|block2)\."), lambda m: "mid"),
    (re.compile(r"^up\.(\d+)\."), lambda m: f"up{m.group(1)}"),  # up.0 is the deepest up level
    (re.compile(r"^final_(block|conv)\."), lambda m: "output"),
)


def block_of(name: str) -> str:
    """Block label of a U-Net parameter name: time, input, down{i}, mid, up{i} or output."""
    for pattern, label in _BLOCK_PATTERNS:
        m = pattern.match(name)
        if m:
            return label(m)
    raise ValueError(f"parameter {name!r} belongs to no known U-Net block")


def block_rank(block: str) -> tuple[int, int]:
    """Sort key of a block label along the forward pass."""
    m = re.fullmatch(r"([a-z]+?)(\d*)", block)
    if not m or m.group(1) not in _BLOCK_RANK:
        raise ValueError(f"unknown block label {block!r}")
    return _BLOCK_RANK[m.group(1)], int(m.group(2) or 0)


def block_order(names: Sequence[str]) -> list[str]:
    """Distinct blocks of these parameter names, in forward order:
    time, input, down0, down1, ..., mid, up0, up1, ..., output."""
    return sorted({block_of(n) for n in names}, key=block_rank)


# -- metrics ------------------------------------------------------------------------------------
_STATS = ("n", "n_a", "n_b", "n_ab", "n_sign", "dot", "norm_a", "norm_b")


def _pair_stats(mask_a: torch.Tensor, mask_b: torch.Tensor, weights_a: Optional[torch.Tensor],
                weights_b: Optional[torch.Tensor]) -> torch.Tensor:
    """The sufficient statistics of one layer's comparison, as one float64 tensor (no host sync)."""
    a, b = mask_a.flatten().bool(), mask_b.flatten().to(mask_a.device).bool()
    if a.shape != b.shape:
        raise ValueError(f"masks differ in size: {tuple(mask_a.shape)} vs {tuple(mask_b.shape)}")
    both = a & b
    counts = torch.stack([a.sum(), b.sum(), both.sum()]).double()
    if weights_a is None or weights_b is None:
        extra = torch.full((4,), float("nan"), dtype=torch.float64, device=a.device)
    else:
        wa = weights_a.detach().flatten().to(a.device, torch.float64) * a
        wb = weights_b.detach().flatten().to(a.device, torch.float64) * b
        same_sign = (torch.sign(wa) == torch.sign(wb)) & both
        extra = torch.stack([same_sign.sum().double(), (wa * wb).sum(), wa.norm(), wb.norm()])
    n = torch.tensor([float(a.numel())], dtype=torch.float64, device=a.device)
    return torch.cat([n, counts, extra])  # order: _STATS


def _metrics_from_stats(s: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every metric for a (layers, 8) stack of `_pair_stats`, vectorised over layers."""
    n, n_a, n_b, n_ab, n_sign, dot, norm_a, norm_b = s.unbind(-1)
    union = n_a + n_b - n_ab
    p, q = n_a / n, n_b / n
    jaccard = torch.where(union > 0, n_ab / union.clamp_min(1), torch.ones_like(n))
    chance_union = p + q - p * q
    jaccard_chance = torch.where(chance_union > 0, p * q / chance_union.clamp_min(1e-300), torch.ones_like(n))
    agree = (n - union + n_ab) / n  # kept by both or pruned by both
    expected = p * q + (1 - p) * (1 - q)
    free = 1 - expected
    kappa = torch.where(free > 0, (agree - expected) / free.where(free > 0, torch.ones_like(free)),
                        torch.ones_like(n))
    hamming = (union - n_ab) / n
    sign = n_sign / n_ab.where(n_ab > 0, torch.full_like(n_ab, float("nan")))
    norms = norm_a * norm_b
    cosine = torch.where(norms > 0, dot / norms.where(norms > 0, torch.ones_like(norms)), torch.zeros_like(n))
    cosine = cosine.where(~norms.isnan(), norms)  # no weights given -> NaN
    return {"jaccard": jaccard, "jaccard_chance": jaccard_chance, "kappa": kappa, "hamming": hamming,
            "sign_agreement": sign, "cosine": cosine}


def layer_metrics(mask_a: torch.Tensor, mask_b: torch.Tensor, weights_a: Optional[torch.Tensor] = None,
                  weights_b: Optional[torch.Tensor] = None) -> dict[str, float]:
    """All of METRICS for one layer's two boolean masks (and trained weights, for the sign and
    cosine metrics; without them those two are NaN)."""
    m = _metrics_from_stats(_pair_stats(mask_a, mask_b, weights_a, weights_b)[None])
    return {k: float(v[0]) for k, v in m.items()}


def agreement(mask_a: Mask, mask_b: Mask, metric: str = "kappa") -> dict[str, float]:
    """Per-layer agreement of two masks: Cohen's kappa, or Jaccard minus its chance value (both are
    0 for independent random masks, so layers of different densities compare fairly)."""
    if metric not in ("kappa", "jaccard"):
        raise ValueError(f"agreement metric must be kappa or jaccard, got {metric!r}")
    names = _same_layers(mask_a, mask_b)
    m = _metrics_from_stats(torch.stack([_pair_stats(mask_a[n], mask_b[n], None, None) for n in names]))
    values = m["kappa"] if metric == "kappa" else m["jaccard"] - m["jaccard_chance"]
    return dict(zip(names, values.tolist()))


def _same_layers(mask_a: Mask, mask_b: Mask) -> list[str]:
    if set(mask_a.names()) != set(mask_b.names()):
        only = sorted(set(mask_a.names()) ^ set(mask_b.names()))
        raise ValueError(f"the two tickets prune different layers: {only[:3]}")
    return mask_a.names()


def compare_tickets(mask_a: Mask, mask_b: Mask, weights_a: Mapping[str, torch.Tensor],
                    weights_b: Mapping[str, torch.Tensor], order: Sequence[str]) -> pd.DataFrame:
    """Tidy rows (layer, block, depth, metric, value) for every layer both masks cover, with
    depth = index in `order` (the forward order, e.g. from `forward_layer_order`) among those layers."""
    _same_layers(mask_a, mask_b)
    missing = [n for n in mask_a.names() if n not in set(order)]
    if missing:
        raise ValueError(f"layers missing from the forward order: {missing[:3]}")
    names = [n for n in order if n in mask_a.tensors]
    stats = torch.stack([_pair_stats(mask_a[n], mask_b[n], weights_a[n], weights_b[n]) for n in names])
    metrics = _metrics_from_stats(stats)
    values = torch.stack([metrics[m] for m in METRICS], dim=1).cpu().numpy()  # one host copy
    L, M = values.shape
    return pd.DataFrame({
        "layer": np.repeat(names, M),
        "block": np.repeat([block_of(n) for n in names], M),
        "depth": np.repeat(np.arange(L), M),
        "metric": np.tile(METRICS, L),
        "value": values.reshape(-1),
    })


# -- the layerwise schedule's per-layer weights --------------------------------------------------
EPS = 1e-3  # floor of the redundancy 1 - agreement: a layer whose tickets agree fully is nearly spared


def layer_weights_from_agreement(agreement: Mapping[str, float], strength: float,
                                 eps: float = EPS) -> dict[str, float]:
    """weight_l = (r_l / mean_l r_l) ** strength with r_l = max(1 - agreement_l, eps): layers where
    the tickets disagree carry more redundancy and are pruned harder; strength 0 gives all ones
    (the uniform schedule)."""
    if strength < 0:
        raise ValueError(f"strength must be >= 0, got {strength}")
    names = list(agreement)
    r = (1.0 - torch.tensor([agreement[n] for n in names], dtype=torch.float64)).clamp_min(eps)
    w = (r / r.mean()).pow(strength)
    return dict(zip(names, w.tolist()))


def round_fractions(kept: Mapping[str, int], rate: float, layer_weights: Optional[Mapping[str, float]] = None,
                    max_layer_rate: float = 0.9) -> dict[str, float]:
    """Fraction of its survivors each layer loses in one round removing uniform's total,
    round(rate * sum_l kept_l): the uniform split, or the layerwise one given `layer_weights`."""
    from .pruning import layerwise_counts, uniform_counts

    counts = uniform_counts(kept, rate)
    if layer_weights is not None:
        counts = layerwise_counts(kept, layer_weights, sum(counts.values()), max_layer_rate)
    return {n: counts[n] / kept[n] for n in kept}


# -- upstream vs downstream ---------------------------------------------------------------------
SPLIT_RULE = ("layers on the input->output path in forward order (the time-embedding MLP excluded: it "
              "feeds every block); upstream = the first floor(L/2) of the L layers, downstream = the "
              "last floor(L/2) (the middle layer is left out when L is odd)")


def path_layers(df: pd.DataFrame, metric: str = "kappa") -> pd.DataFrame:
    """One round's rows of `metric` on the input->output path, sorted by depth, with pos in [0, 1]."""
    rows = df[(df["metric"] == metric) & (df["block"] != "time")].sort_values("depth").reset_index(drop=True)
    L = len(rows)
    rows["pos"] = np.arange(L) / max(L - 1, 1)
    return rows


def upstream_vs_downstream(df: pd.DataFrame, metric: str = "kappa",
                           sizes: Optional[Mapping[str, int]] = None) -> dict:
    """For one round's rows: mean `metric` of the upstream and downstream halves (each layer
    counts once), their difference, the same difference weighted by layer size (if `sizes`), and
    the least-squares slope of `metric` against normalised depth (0 = first layer, 1 = last)."""
    from scipy import stats

    rows = path_layers(df, metric)
    L, h = len(rows), len(rows) // 2
    if h == 0:
        raise ValueError("need at least two layers on the input->output path to compare halves")
    up, down = rows.iloc[:h], rows.iloc[L - h:]
    out = {"layers": L, "upstream_mean": float(up["value"].mean()), "downstream_mean": float(down["value"].mean())}
    out["difference"] = out["upstream_mean"] - out["downstream_mean"]
    if sizes is not None:
        def wmean(part: pd.DataFrame) -> float:
            w = part["layer"].map(sizes).to_numpy(float)
            return float(np.average(part["value"].to_numpy(float), weights=w))
        out["upstream_mean_weighted"], out["downstream_mean_weighted"] = wmean(up), wmean(down)
        out["difference_weighted"] = out["upstream_mean_weighted"] - out["downstream_mean_weighted"]
    y = rows["value"].to_numpy(float)
    if np.ptp(y) == 0:  # no trend at all (correlations would be 0/0)
        out.update(slope=0.0, slope_pvalue=1.0, slope_r=0.0, spearman_rho=0.0)
        return out
    fit = stats.linregress(rows["pos"].to_numpy(float), y)
    out.update(slope=float(fit.slope), slope_pvalue=float(fit.pvalue), slope_r=float(fit.rvalue),
               spearman_rho=float(stats.spearmanr(rows["depth"], y).statistic))
    return out


def _mean_std(values: Sequence[float]) -> dict:
    v = np.asarray(values, dtype=float)
    return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if len(v) > 1 else None, "n": len(v)}


def summarize(df: pd.DataFrame, metric: str = "kappa", sizes: Optional[Mapping[str, int]] = None,
              seeds: Sequence[int] = ()) -> dict:
    """Whether upstream layers agree more than downstream ones, per round and over rounds, from
    the similarity table (columns round + COLUMNS), with a one-sentence finding either way."""
    per_round = []
    for k, part in df.groupby("round", sort=True):
        row = {"round": int(k), **upstream_vs_downstream(part, metric, sizes)}
        blocks = part[part["metric"] == metric].groupby("block")["value"].mean()
        row["block_mean"] = {b: float(blocks[b]) for b in sorted(blocks.index, key=block_rank)}
        per_round.append(row)
    diffs = [r["difference"] for r in per_round]
    slopes = [r["slope"] for r in per_round]
    out = {"metric": metric, "seeds": list(seeds), "split": SPLIT_RULE,
           "difference_is": f"upstream mean {metric} minus downstream mean {metric}, each layer counting once",
           "slope_is": f"least-squares slope of {metric} vs normalised depth (0 first layer, 1 last)",
           "rounds": per_round, "difference": _mean_std(diffs), "slope": _mean_std(slopes)}
    if sizes is not None:
        out["difference_weighted"] = _mean_std([r["difference_weighted"] for r in per_round])
    out["finding"] = _finding(diffs, slopes, [r["slope_pvalue"] for r in per_round], metric, seeds)
    return out


def _finding(diffs: Sequence[float], slopes: Sequence[float], pvalues: Sequence[float], metric: str,
             seeds: Sequence[int]) -> str:
    n, up = len(diffs), sum(d > 0 for d in diffs)
    falling = sum(s < 0 for s in slopes)
    d, s = _mean_std(diffs), _mean_std(slopes)
    pm = lambda x: f" ± {x['std']:.3f}" if x["std"] is not None else ""
    if up == n and falling == n:
        verdict = "agree more than downstream ones in every round, as the paper reports"
    elif all(x < 0 for x in diffs) and all(x > 0 for x in slopes):
        verdict = "agree less than downstream ones in every round, contrary to the paper"
    else:
        verdict = "do not consistently agree more than downstream ones (mixed across rounds or measures)"
    pair = f"the tickets of seeds {seeds[0]} and {seeds[1]}" if len(seeds) >= 2 else "the two tickets"
    return (f"Upstream layers of {pair} {verdict}: {metric} upstream minus downstream "
            f"{d['mean']:+.3f}{pm(d)} (positive in {up}/{n} rounds), slope vs normalised depth "
            f"{s['mean']:+.3f}{pm(s)} (negative in {falling}/{n} rounds; p = {_span(pvalues)}).")


def _span(values: Sequence[float]) -> str:
    lo, hi = min(values), max(values)
    return f"{lo:.2g}" if lo == hi else f"{lo:.2g} to {hi:.2g}"


# -- figures ------------------------------------------------------------------------------------
_LABELS = {"kappa": "Cohen's kappa", "jaccard": "Jaccard (IoU of kept weights)", "hamming": "Hamming distance",
           "sign_agreement": "sign agreement", "cosine": "cosine similarity", "jaccard_chance": "chance Jaccard"}


def _round_label(k: int, round_labels: Optional[Mapping[int, str]]) -> str:
    return (round_labels or {}).get(int(k), f"round {int(k)}")


def plot_heatmap(df: pd.DataFrame, metric: str = "kappa", *, title: str = "",
                 round_labels: Optional[Mapping[int, str]] = None):
    """Blocks in forward order (x) by rounds (y): mean `metric` over each block's layers."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sel = df[df["metric"] == metric]
    table = sel.pivot_table(index="round", columns="block", values="value", aggfunc="mean")
    table = table[sorted(table.columns, key=block_rank)].sort_index()
    fig, ax = plt.subplots(figsize=(1.0 + 0.8 * table.shape[1], 1.6 + 0.55 * table.shape[0]))
    im = ax.imshow(table.to_numpy(float), aspect="auto", cmap="viridis")
    lo, hi = np.nanmin(table.to_numpy(float)), np.nanmax(table.to_numpy(float))
    digits = 2 if hi - lo >= 0.05 else 3  # near-identical tickets still show their differences
    for i in range(table.shape[0]):
        for j in range(table.shape[1]):
            v = table.iat[i, j]
            ax.text(j, i, f"{v:.{digits}f}", ha="center", va="center", fontsize=8,
                    color="white" if v < (lo + hi) / 2 else "black")
    ax.set_xticks(range(table.shape[1]), table.columns, rotation=45, ha="right")
    ax.set_yticks(range(table.shape[0]), [_round_label(k, round_labels) for k in table.index])
    ax.set_xlabel("U-Net block (forward order: input -> down -> mid -> up -> output)")
    ax.set_ylabel("IMP round")
    ax.set_title(f"Ticket agreement per block: {_LABELS.get(metric, metric)}" + (f"\n{title}" if title else ""))
    fig.colorbar(im, ax=ax, label=f"{_LABELS.get(metric, metric)}, mean over the block's layers (unitless)")
    return fig


def plot_depth(df: pd.DataFrame, metric: str | Sequence[str] = "kappa", *, title: str = "",
               round_labels: Optional[Mapping[int, str]] = None):
    """`metric` (one name or several, one panel each) against layer depth, one line per round, with
    block boundaries marked; a Jaccard panel also shows the chance level as dotted lines."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [metric] if isinstance(metric, str) else list(metric)
    fig, axes = plt.subplots(len(metrics), 1, figsize=(10, 3.2 * len(metrics)), sharex=True, squeeze=False)
    layers = df.drop_duplicates("layer").sort_values("depth")
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, name in zip(axes[:, 0], metrics):
        for i, (k, part) in enumerate(df.groupby("round", sort=True)):
            c = colors[i % len(colors)]
            rows = part[part["metric"] == name].sort_values("depth")
            ax.plot(rows["depth"], rows["value"], marker=".", color=c, label=_round_label(k, round_labels))
            if name == "jaccard":
                ch = part[part["metric"] == "jaccard_chance"].sort_values("depth")
                ax.plot(ch["depth"], ch["value"], ls=":", color=c,
                        label=f"{_round_label(k, round_labels)}: chance (independent masks)")
        _mark_blocks(ax, layers)
        ax.set_ylabel(f"{_LABELS.get(name, name)} (unitless)")
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=7, loc="best")
    axes[-1, 0].set_xlabel("layer depth (index of the prunable layer in forward order)")
    axes[0, 0].set_title("Ticket agreement vs depth" + (f"\n{title}" if title else ""), pad=18)
    fig.tight_layout()
    return fig


def _mark_blocks(ax, layers: pd.DataFrame) -> None:
    """Dashed lines between blocks, block names along the top."""
    depth, block = layers["depth"].to_numpy(), layers["block"].to_numpy()
    starts = [0] + [i for i in range(1, len(block)) if block[i] != block[i - 1]]
    for s in starts[1:]:
        ax.axvline(depth[s] - 0.5, color="grey", ls="--", lw=0.7)
    ends = starts[1:] + [len(block)]
    for s, e in zip(starts, ends):
        ax.text((depth[s] + depth[e - 1]) / 2, 1.01, block[s], transform=ax.get_xaxis_transform(),
                ha="center", va="bottom", fontsize=7)
