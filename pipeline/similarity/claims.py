"""Claims about the per-layer agreement of pairs of tickets, each with an effect over ticket pairs, a
95 % interval over ticket pairs AND layers, and a permutation p-value over layers that keeps layer types apart.

The unit is the ticket pair. The IMP seeds give tickets of one θ0 that differ only in the data order;
every claim's effect is computed for each unordered pair of seeds (3 seeds: 3 pairs) and averaged over
the pairs, a U-statistic. Pairs and layers are crossed, so its interval ('ci', `with_layers`,
pipeline.similarity.crossed) adds to the delete-one-seed jackknife of the pairs ('ci_pairs', kept as a
description; Student-t, n − 1 df, very rough with 3 seeds) the variance of drawing the layers within
strata (half × layer type). With 2 seeds there is one pair and no interval, so no verdict can be more
than inconclusive. A verdict ('verdict': more / less / inconclusive) needs the interval and the layer
permutation test to agree (crossed.VERDICT_RULE); 'p' is the p it rests on, for Holm in the report.

The p-values answer a narrower question, about this network's layers: permutation tests on the
per-layer agreement averaged over the pairs, with labels shuffled only within layer-type strata
(3x3 conv, 1x1 skip conv, attention, linear; `agreement.layer_type`). Layer types differ in how much
their tickets agree and sit unevenly along the path (every 1x1 skip conv is on the decoder side), so an
unstratified permutation would credit position with what type does. No p-value treats layers as
independent draws of a parametric model; the fan-in correlation has none.

Agreement is chance-corrected (`similarity.metric`): Cohen's kappa, or Jaccard minus the Jaccard of
independent masks of the same densities; both are 0 for unrelated masks. The magnitude claim
(pipeline.similarity.magnitude) is always in kappa.

IMP rounds are nested (round k's ticket is cut from round k-1's), so values of different rounds are
reported as per-round values, never as replicates with a spread; claims are read at the last round
(pipeline.similarity.summary); the words are pipeline.report.text's.
"""
from __future__ import annotations

import math
from typing import Callable, Mapping, Optional, Sequence

import numpy as np
import pandas as pd

from pipeline.similarity.crossed import crossed
from pipeline.similarity.naming import pair_label, parse_pair
from pipeline.stats.exact import stratified_permutation_test
from pipeline.stats.pairs import pair_mean

CI_LEVEL = 0.95
RESAMPLES = 2000  # permutations / sign patterns per test (similarity.resamples overrides)
SEED = 0          # every test draws from its own stream, keyed by (SEED, claim, round, part): byte-stable output
SKIP = "skip1x1"  # the layer type reported with and without

_CI = "interval over pairs and layers (seed jackknife + layers within strata)"
TEST = {
    "upstream_vs_downstream": "mean over ticket pairs of upstream-half mean minus downstream-half mean; " + _CI +
                              "; two-sided permutation test exchanging layers between the halves only within "
                              "layer types",
    "resolution_matched": "mean over ticket pairs of the encoder-minus-decoder mean, averaged over levels; " + _CI +
                          "; two-sided permutation test exchanging layers between encoder and decoder only within "
                          "each level and layer type",
    "beyond_magnitude": "mean over ticket pairs and layers of kappa(A,B) minus the kappa predicted if A and B kept "
                        "weights independently given each one's magnitude-rank bin in its own start; " + _CI +
                        "; two-sided sign-flip test over layers of the pair-averaged per-layer excess",
    "fan_in": "mean over ticket pairs of the upstream coefficient in agreement ~ 1 + log fan-in + upstream; " + _CI +
              "; two-sided Freedman-Lane permutation test (residuals of agreement on log fan-in) within layer types; "
              "the correlation r is reported per pair without a p-value (layers of one network are not independent "
              "draws)",
}
_CLAIM_KEY = {name: i for i, name in enumerate(TEST)}


# -- the per-layer values -----------------------------------------------------------------------
def chance_corrected(df: pd.DataFrame, metric: str = "kappa") -> pd.DataFrame:
    """Rows of the similarity table reduced to one chance-corrected agreement `value` per layer
    (and pair and round, if the table has them): kappa as is, or jaccard - jaccard_chance."""
    keys = [c for c in ("pair", "round", "layer", "block", "depth") if c in df.columns]
    if metric == "kappa":
        return df.loc[df["metric"] == "kappa", keys + ["value"]].reset_index(drop=True)
    if metric == "jaccard":
        j = df.loc[df["metric"] == "jaccard", keys + ["value"]]
        c = df.loc[df["metric"] == "jaccard_chance", keys + ["value"]]
        out = j.merge(c, on=keys, suffixes=("", "_chance"), validate="one_to_one")
        return out.assign(value=out["value"] - out["value_chance"]).drop(columns="value_chance")
    raise ValueError(f"agreement metric must be kappa or jaccard, got {metric!r}")


def path_layers(df: pd.DataFrame, metric: str = "kappa") -> pd.DataFrame:
    """One pair's and round's chance-corrected rows on the input->output path, sorted by depth, pos in [0, 1]."""
    rows = chance_corrected(df, metric)
    rows = rows[rows["block"] != "time"].sort_values("depth").reset_index(drop=True)
    rows["pos"] = np.arange(len(rows)) / max(len(rows) - 1, 1)
    return rows


def upstream_vs_downstream(df: pd.DataFrame, metric: str = "kappa",
                           sizes: Optional[Mapping[str, int]] = None) -> dict:
    """For one pair's rows of one round: mean agreement of the upstream and downstream halves (each
    layer counts once), their difference, the same weighted by layer size (if `sizes`), and the
    least-squares slope of agreement against normalised depth (0 = first layer, 1 = last; no p-value:
    the layers are not independent draws)."""
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
            return float(np.average(part["value"].to_numpy(float), weights=part["layer"].map(sizes).to_numpy(float)))
        out["upstream_mean_weighted"], out["downstream_mean_weighted"] = wmean(up), wmean(down)
        out["difference_weighted"] = out["upstream_mean_weighted"] - out["downstream_mean_weighted"]
    y = rows["value"].to_numpy(float)
    if np.ptp(y) == 0:  # no trend at all (correlations would be 0/0)
        out.update(slope=0.0, slope_r=0.0, spearman_rho=0.0)
        return out
    fit = stats.linregress(rows["pos"].to_numpy(float), y)
    out.update(slope=float(fit.slope), slope_r=float(fit.rvalue),
               spearman_rho=float(stats.spearmanr(rows["depth"], y).statistic))
    return out


# -- over ticket pairs --------------------------------------------------------------------------
def over_pairs(values: Mapping[str, float]) -> dict:
    """U-statistic of per-pair values {"a-b": value} with its interval over pairs and layers (seed jackknife + layers within strata)
    (`pair_mean`); with one pair (2 seeds) the pair's value and no interval."""
    values = {str(p): float(v) for p, v in values.items()}
    keyed = {parse_pair(p): v for p, v in values.items()}
    seeds = list(dict.fromkeys(s for pair in keyed for s in pair))
    out = {"effect": None, "ci": None, "se": None, "ci_rule": "", "pairs": values}
    if not values or not all(math.isfinite(v) for v in values.values()):
        return {**out, "ci_rule": "undefined for at least one pair"}
    if len(seeds) < 3:
        return {**out, "effect": float(np.mean(list(values.values()))),
                "ci_rule": f"{len(values)} pair of tickets of {len(seeds)} seeds: no seed-level interval (the "
                           "delete-one-seed jackknife needs at least 3 seeds)"}
    est = pair_mean(keyed, seeds, CI_LEVEL)
    return {**out, "effect": est.estimate, "ci": [est.low, est.high], "se": est.se, "ci_rule": est.rule,
            "leave_one_out": {str(s): v for s, v in est.leave_one_out.items()}}


def _stream(claim: str, k: int, part: int = 0) -> int:
    return int(np.random.SeedSequence([SEED, _CLAIM_KEY[claim], int(k), part]).generate_state(1)[0])


def _with_pairs(df: pd.DataFrame, seeds: Sequence) -> pd.DataFrame:
    """The table with a `pair` column; one without is a single pair (of `seeds`' first two)."""
    if "pair" in df.columns:
        return df.assign(pair=df["pair"].astype(str))
    label = pair_label(seeds[0], seeds[1]) if len(seeds) >= 2 else pair_label("A", "B")
    return df.assign(pair=label)


def _wide(rows: pd.DataFrame, pairs: Sequence[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One round's long rows -> (meta: layer -> block, depth in forward order; wide: layer x pair)."""
    meta = rows.drop_duplicates("layer").set_index("layer")[["block", "depth"]].sort_values("depth")
    wide = rows.pivot(index="layer", columns="pair", values="value").reindex(index=meta.index, columns=list(pairs))
    if wide.isna().any().any():
        missing = wide.columns[wide.isna().any()].tolist()
        raise ValueError(f"pairs {missing} lack values for some layers: every pair must cover the same layers")
    return meta, wide


def _halves(meta: pd.DataFrame) -> tuple[list[str], list[str]]:
    path = meta.index[meta["block"] != "time"].tolist()
    h = len(path) // 2
    if h == 0:
        raise ValueError("need at least two layers on the input->output path to compare halves")
    return path[:h], path[len(path) - h:]


def halves_of(meta: pd.DataFrame) -> dict[str, str]:
    """layer -> 'upstream' / 'downstream' / 'other' (the middle layer of an odd path, the time MLP)."""
    up, down = _halves(meta)
    side = {**dict.fromkeys(up, "upstream"), **dict.fromkeys(down, "downstream")}
    return {name: side.get(name, "other") for name in meta.index}


def with_layers(est: dict, layer_means, coef, strata: Sequence[str], p_layers: Optional[float]) -> dict:
    """A pair-level estimate (`over_pairs`) with the two-way interval over pairs and layers
    (pipeline.similarity.crossed): 'ci' becomes the two-way interval, 'ci_pairs' keeps the pair-only one
    (descriptive), and 'verdict' / 'p' follow the rule that needs the pair and the layer evidence to agree."""
    keyed = {parse_pair(p): v for p, v in (est.get("pairs") or {}).items()}
    seeds = list(dict.fromkeys(s for pair in keyed for s in pair))
    if est.get("effect") is None or not keyed:
        two = crossed({}, [], np.zeros(0), np.zeros(0), [], p_layers)
    else:
        two = crossed(keyed, seeds, np.asarray(layer_means, float), np.asarray(coef, float), list(strata), p_layers)
    rule = two["ci_two_way_rule"] + f"; pair part: {est['ci_rule']}" if est.get("ci_rule") else two["ci_two_way_rule"]
    return {**est, **two, "ci_pairs": est.get("ci"), "se_pairs": est.get("se"), "ci": two["ci"],
            "se": two["se_two_way"], "ci_rule": rule, "n_pairs": len(keyed)}


def _half_coef(a: Sequence[str], b: Sequence[str]) -> np.ndarray:
    return np.r_[np.full(len(a), 1.0 / len(a)), np.full(len(b), -1.0 / len(b))]


def _diff(wide: pd.DataFrame, a: Sequence[str], b: Sequence[str]) -> dict:
    return {p: float(wide.loc[list(a), p].mean() - wide.loc[list(b), p].mean()) for p in wide.columns}


def _test(values, labels, strata, claim: str, k: int, n: int, part: int = 0,
          statistic: Optional[Callable] = None):
    return stratified_permutation_test(np.asarray(values, float), np.asarray(labels), np.asarray(strata),
                                       statistic=statistic, n_resamples=n, seed=_stream(claim, k, part))


# -- the four claims, for one round -------------------------------------------------------------
def claim_upstream(wide: pd.DataFrame, meta: pd.DataFrame, types: Mapping[str, str], k: int, n: int) -> dict:
    """Upstream minus downstream half, per pair and over pairs; also without the 1x1 skip convs
    (same halves, those layers left out of both means)."""
    up, down = _halves(meta)
    both = up + down
    y = wide.loc[both].mean(axis=1).to_numpy(float)
    lab = np.r_[np.ones(len(up), bool), np.zeros(len(down), bool)]
    st = [types[name] for name in both]
    test = _test(y, lab, st, "upstream_vs_downstream", k, n)
    plain = _test(y, lab, ["all"] * len(both), "upstream_vs_downstream", k, n, part=1)
    halves = halves_of(meta)
    layer_strata = [f"{halves[x]}|{types[x]}" for x in both]
    out = {**with_layers(over_pairs(_diff(wide, up, down)), y, _half_coef(up, down), layer_strata, test.p),
           "p_value": test.p, "p_value_rule": test.rule,
           "p_value_unstratified": plain.p,
           "p_value_unstratified_is": "the same test with labels shuffled across all layers, for comparison only: "
                                      "it treats layers of different types as exchangeable",
           "upstream_mean": float(wide.loc[up].to_numpy().mean()),
           "downstream_mean": float(wide.loc[down].to_numpy().mean()), "layers_per_half": len(up),
           "strata": {t: {"upstream": sum(types[x] == t for x in up), "downstream": sum(types[x] == t for x in down)}
                      for t in sorted(set(st))}}
    skips = [x for x in both if types[x] == SKIP]
    up_ns, down_ns = [x for x in up if types[x] != SKIP], [x for x in down if types[x] != SKIP]
    if up_ns and down_ns:
        sel = up_ns + down_ns
        test_ns = _test(wide.loc[sel].mean(axis=1), np.r_[np.ones(len(up_ns), bool), np.zeros(len(down_ns), bool)],
                        [types[x] for x in sel], "upstream_vs_downstream", k, n, part=2)
        without = {**with_layers(over_pairs(_diff(wide, up_ns, down_ns)), wide.loc[sel].mean(axis=1),
                                 _half_coef(up_ns, down_ns), [f"{halves[x]}|{types[x]}" for x in sel], test_ns.p),
                   "p_value": test_ns.p}
    else:
        without = {**with_layers(over_pairs({}), [], [], [], None), "p_value": None,
                   "reason": "a half has no layer other than 1x1 skip convs"}
    out["without_skip"] = {**without, "layers_left_out": skips, "upstream_layers": len(up_ns),
                           "downstream_layers": len(down_ns),
                           "rule": "the same halves with the 1x1 skip convs left out of both means"}
    return out


def _level_mean_statistic(level_index: np.ndarray, n_levels: int) -> Callable:
    """statistic(values, labels (B, m) bool: encoder) = mean over levels of encoder mean − decoder mean."""
    def statistic(x: np.ndarray, labels: np.ndarray) -> np.ndarray:
        total = np.zeros(labels.shape[0])
        for lv in range(n_levels):
            sel = level_index == lv
            enc = labels[:, sel].astype(np.float64)
            total += enc @ x[sel] / enc.sum(1) - (1 - enc) @ x[sel] / (1 - enc).sum(1)
        return total / n_levels
    return statistic


def claim_resolution(wide: pd.DataFrame, meta: pd.DataFrame, types: Mapping[str, str], pairs: Sequence[dict],
                     k: int, n: int, baseline: Optional[pd.Series] = None) -> Optional[dict]:
    """Encoder minus decoder mean agreement per level pair, averaged over the levels; per ticket
    pair, over pairs, and per level (`baseline`: layer -> each ticket's agreement with its own
    start's magnitude mask, mean over seeds, drawn beside the levels)."""
    levels, per_pair = [], {p: [] for p in wide.columns}
    ys, labs, strata, lidx, coef, sample_strata = [], [], [], [], [], []
    for pair in pairs:
        enc = meta.index[meta["block"] == pair["encoder"]].tolist()
        dec = meta.index[meta["block"] == pair["decoder"]].tolist()
        if not enc or not dec:
            continue
        diff = _diff(wide, enc, dec)
        for p, v in diff.items():
            per_pair[p].append(v)
        e_side, d_side = over_pairs(wide.loc[enc].mean().to_dict()), over_pairs(wide.loc[dec].mean().to_dict())
        sel = enc + dec
        y = wide.loc[sel].mean(axis=1).to_numpy(float)
        lab = np.r_[np.ones(len(enc), bool), np.zeros(len(dec), bool)]
        st = [f"{pair['level']}|{types[x]}" for x in sel]
        test = _test(y, lab, st, "resolution_matched", k, n, part=1 + len(levels))
        level = {**pair, "encoder_layers": len(enc), "decoder_layers": len(dec),
                 "encoder_mean": e_side["effect"], "encoder_ci": e_side["ci"],
                 "decoder_mean": d_side["effect"], "decoder_ci": d_side["ci"],
                 **over_pairs(diff), "p_value": test.p}
        if baseline is not None:
            level["encoder_baseline"] = float(baseline.reindex(enc).mean())
            level["decoder_baseline"] = float(baseline.reindex(dec).mean())
        ys.append(y)
        coef.append(_half_coef(enc, dec))
        sample_strata += [f"{pair['level']}|{'encoder' if x in enc else 'decoder'}|{types[x]}" for x in sel]
        labs.append(lab)
        strata += st
        lidx += [len(levels)] * len(sel)
        levels.append(level)
    if not levels:
        return None  # no encoder/decoder pair with prunable layers on both sides
    stat = _level_mean_statistic(np.asarray(lidx), len(levels))
    test = _test(np.concatenate(ys), np.concatenate(labs), strata, "resolution_matched", k, n, statistic=stat)
    est = over_pairs({p: float(np.mean(v)) for p, v in per_pair.items()})
    est = with_layers(est, np.concatenate(ys), np.concatenate(coef) / len(levels), sample_strata, test.p)
    return {**est, "p_value": test.p, "p_value_rule": test.rule, "levels": levels,
            "layer_strata_are": "level x side (encoder / decoder) x layer type"}


def _residualize(v: np.ndarray, xc: np.ndarray) -> np.ndarray:
    """v minus its least-squares fit on [1, x] along the last axis (xc: x centred)."""
    vc = v - v.mean(axis=-1, keepdims=True)
    sxx = (xc * xc).sum(axis=-1, keepdims=True)
    slope = np.where(sxx > 0, (xc * vc).sum(axis=-1, keepdims=True) / np.where(sxx > 0, sxx, 1.0), 0.0)
    return vc - slope * xc


def _partial_effect(x: np.ndarray, y: np.ndarray, h: int) -> np.ndarray:
    """Coefficient of the upstream indicator in y ~ 1 + x + upstream (first h entries upstream, last
    h downstream), by Frisch-Waugh-Lovell: regress y's residual on the indicator's residual, both
    after fitting on [1, x]. The upstream-minus-downstream difference at equal log fan-in; NaN where
    x determines the split. Vectorised over leading axes."""
    xc = x - x.mean(axis=-1, keepdims=True)
    d = np.broadcast_to(np.r_[np.ones(h), np.zeros(x.shape[-1] - h)], x.shape)
    dr, yr = _residualize(d, xc), _residualize(y, xc)
    ddd = (dr * dr).sum(axis=-1)
    ok = ddd > 1e-9 * h
    return np.where(ok, (dr * yr).sum(axis=-1) / np.where(ok, ddd, 1.0), np.nan)


def claim_fan_in(wide: pd.DataFrame, meta: pd.DataFrame, types: Mapping[str, str], fan_in: Mapping[str, int],
                 k: int, n: int) -> dict:
    """Correlation of agreement with log fan-in over the path (per pair, no p-value), and the
    upstream-vs-downstream effect with log fan-in partialled out (both halves fitted together), per
    pair and over pairs. effect None when fan-in alone decides which half a layer is in."""
    from scipy import stats

    path = meta.index[meta["block"] != "time"].tolist()
    up, down = _halves(meta)
    h, sel = len(up), up + down
    x_all = np.log(np.array([fan_in[name] for name in path], float))
    r_by_pair, slope_by_pair = {}, {}
    for p in wide.columns:
        y_all = wide.loc[path, p].to_numpy(float)
        if np.ptp(x_all) > 0 and np.ptp(y_all) > 0:
            r_by_pair[p] = float(stats.pearsonr(x_all, y_all).statistic)
            slope_by_pair[p] = float(stats.linregress(x_all, y_all).slope)
        else:
            r_by_pair[p], slope_by_pair[p] = 0.0, 0.0
    x = np.log(np.array([fan_in[name] for name in sel], float))
    upstream = np.r_[np.ones(h), np.zeros(h)]
    r = float(np.mean(list(r_by_pair.values())))
    detail = {"r": r, "r_by_pair": r_by_pair, "slope_per_log_fan_in": float(np.mean(list(slope_by_pair.values()))),
              "fan_in_vs_upstream_r": float(np.corrcoef(x, upstream)[0, 1]) if np.ptp(x) > 0 else 0.0,
              "correlation": {"r": r, "r_by_pair": r_by_pair, "layers": len(path),
                              "test": "Pearson r of agreement with log fan-in over the path layers, per pair and "
                                      "its mean over pairs; no p-value: the layers of one network are not "
                                      "independent draws"}}
    effects = {p: float(_partial_effect(x, wide.loc[sel, p].to_numpy(float), h)) for p in wide.columns}
    if not all(math.isfinite(v) for v in effects.values()):
        return {**over_pairs({}), "p_value": None, **detail}
    # Freedman-Lane within layer types: permuting the residuals e of y ~ 1 + x against the indicator's
    # residual dr is the same as permuting dr against e; the coefficient is dr . e / |dr|^2
    y = wide.loc[sel].mean(axis=1).to_numpy(float)
    xc = x - x.mean()
    e, dr = _residualize(y, xc), _residualize(upstream, xc)
    test = _test(e, dr, [types[name] for name in sel], "fan_in", k, n,
                 statistic=lambda v, lab: lab @ v / float(dr @ dr))
    halves = halves_of(meta)
    # the layer part from the residuals of the full fit y ~ 1 + log fan-in + upstream: what fan-in and the
    # split explain is not layer-to-layer noise
    resid = e - (dr @ y / float(dr @ dr)) * dr
    est = with_layers(over_pairs(effects), resid, dr / float(dr @ dr), [f"{halves[x]}|{types[x]}" for x in sel],
                      test.p)
    return {**est, "p_value": test.p, "p_value_rule": test.rule, **detail,
            "residual_difference": float(e[:h].mean() - e[h:].mean())}


# -- the summary --------------------------------------------------------------------------------
