"""Claims about the per-layer agreement of pairs of tickets, each with an effect over ticket pairs, a
95 % interval over seeds and a permutation p-value over layers that keeps layer types apart.

The unit is the ticket pair. The IMP seeds give tickets of one θ0 that differ only in the data order;
every claim's effect is computed for each unordered pair of seeds (3 seeds: 3 pairs) and averaged over
the pairs, a U-statistic, and its interval is the delete-one-seed jackknife of
`pipeline.stats.pairs.pair_mean` (Student-t, n − 1 df; with 3 seeds each leave-one-out value is a
single pair and the interval rests on 2 df: very rough). Every pair's value is reported beside the
mean. With 2 seeds there is one pair and no interval, so no verdict can be more than inconclusive.

The p-values answer a narrower question, about this network's layers: permutation tests on the
per-layer agreement averaged over the pairs, with labels shuffled only within layer-type strata
(3x3 conv, 1x1 skip conv, attention, linear; `agreement.layer_type`). Layer types differ in how much
their tickets agree and sit unevenly along the path (every 1x1 skip conv is on the decoder side), so an
unstratified permutation would credit position with what type does. No p-value treats layers as
independent draws of a parametric model; the fan-in correlation has none.

Agreement is chance-corrected (`similarity.metric`): Cohen's kappa, or Jaccard minus the Jaccard of
independent masks of the same densities; both are 0 for unrelated masks. The magnitude claim is always
in kappa: its null is a product of kappas (`pipeline.stats.pairs`), which Jaccard has no analogue of.

IMP rounds are nested (round k's ticket is cut from round k-1's), so values of different rounds are
reported as per-round values, never as replicates with a spread; claims are read at the last round.
"""
from __future__ import annotations

import math
from typing import Callable, Mapping, Optional, Sequence

import numpy as np
import pandas as pd

from pipeline.similarity.agreement import (LAYER_TYPE_RULE, PAIRING_RULE, block_rank, layer_type, pair_label,
                                           parse_pair, resolution_pairs)
from pipeline.stats.exact import sign_flip_test, stratified_permutation_test
from pipeline.stats.pairs import magnitude_excess, pair_mean

CI_LEVEL = 0.95
RESAMPLES = 2000  # permutations / sign patterns per test (similarity.resamples overrides)
SEED = 0          # every test draws from its own stream, keyed by (SEED, claim, round, part): byte-stable output
SKIP = "skip1x1"  # the layer type reported with and without

SPLIT_RULE = ("layers on the input->output path in forward order (the time-embedding MLP excluded: it "
              "feeds every block); upstream = the first floor(L/2) of the L layers, downstream = the "
              "last floor(L/2) (the middle layer is left out when L is odd)")
METRIC_IS = {"kappa": "Cohen's kappa of kept/pruned agreement (0 = chance, 1 = identical)",
             "jaccard": "Jaccard of the kept weights minus its chance value pq / (p + q - pq) (0 = chance)"}
UNIT = "ticket pair"
POPULATION = ("pairs of tickets of one theta0 (artifacts/init/theta0.pt) whose IMP seeds vary the data order "
              "only: the intervals cover how tickets of one initialisation differ with the data order, not "
              "initialisation variance")
POPULATION_PER_SEED = ("pairs of tickets of different theta0s (model.theta0 = per_seed: each IMP seed draws its own "
                       "initialisation and data order); the claims compare tickets of one theta0, so they are not "
                       "tested on these pairs")
PAIR_RULE = ("each effect is computed for every unordered pair of IMP seeds and averaged over the pairs "
             "(U-statistic); 95 % interval: delete-one-seed jackknife (Student-t, n - 1 df)")
PERMUTATION_RULE = ("p-values: permutations of the per-layer agreement averaged over the pairs, shuffled only "
                    "within layer-type strata; they describe this network's layers, the interval the ticket pairs")
TEST = {
    "upstream_vs_downstream": "mean over ticket pairs of upstream-half mean minus downstream-half mean; "
                              "seed-level jackknife interval; two-sided permutation test exchanging layers "
                              "between the halves only within layer types",
    "resolution_matched": "mean over ticket pairs of the encoder-minus-decoder mean, averaged over levels; "
                          "seed-level jackknife interval; two-sided permutation test exchanging layers between "
                          "encoder and decoder only within each level and layer type",
    "beyond_magnitude": "mean over ticket pairs and layers of kappa(A,B) - kappa(A,M_A) kappa(M_A,M_B) kappa(M_B,B) "
                        "(observed minus the conditional-independence prediction from each ticket's own start's "
                        "magnitude mask M); seed-level jackknife interval; two-sided sign-flip test over layers of "
                        "the pair-averaged per-layer excess",
    "fan_in": "mean over ticket pairs of the upstream coefficient in agreement ~ 1 + log fan-in + upstream; "
              "seed-level jackknife interval; two-sided Freedman-Lane permutation test (residuals of agreement "
              "on log fan-in) within layer types; the correlation r is reported per pair without a p-value "
              "(layers of one network are not independent draws)",
}
NESTED = "IMP rounds are nested (each ticket is cut from the previous round's), so these are per-round values, not replicates"
MAGNITUDE_PREDICTION = ("if each ticket were the magnitude mask M of its own start (theta_k or theta0, at the "
                        "ticket's per-layer kept counts) plus changes independent of the other ticket's, then for "
                        "binary masks of equal density kappa(A,B) = kappa(A,M_A) kappa(M_A,M_B) kappa(M_B,B) per layer")
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
    """U-statistic of per-pair values {"a-b": value} with its seed-level jackknife interval
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
    out = {**over_pairs(_diff(wide, up, down)), "p_value": test.p, "p_value_rule": test.rule,
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
        without = {**over_pairs(_diff(wide, up_ns, down_ns)), "p_value": test_ns.p}
    else:
        without = {**over_pairs({}), "p_value": None, "reason": "a half has no layer other than 1x1 skip convs"}
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
    ys, labs, strata, lidx = [], [], [], []
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
        labs.append(lab)
        strata += st
        lidx += [len(levels)] * len(sel)
        levels.append(level)
    if not levels:
        return None  # no encoder/decoder pair with prunable layers on both sides
    stat = _level_mean_statistic(np.asarray(lidx), len(levels))
    test = _test(np.concatenate(ys), np.concatenate(labs), strata, "resolution_matched", k, n, statistic=stat)
    return {**over_pairs({p: float(np.mean(v)) for p, v in per_pair.items()}), "p_value": test.p,
            "p_value_rule": test.rule, "levels": levels}


def magnitude_chain(kappa_ab: pd.DataFrame, own: pd.DataFrame, start_pair: pd.DataFrame) -> pd.DataFrame:
    """Per pair and layer: observed kappa(A,B), kappa(A,M_A), kappa(M_A,M_B), kappa(M_B,B), the
    conditional-independence prediction (their product) and the excess observed − predicted.
    `kappa_ab`, `start_pair`: layer x pair; `own`: layer x seed (each ticket against its own start's
    magnitude mask)."""
    frames = []
    for p in kappa_ab.columns:
        a, b = parse_pair(p)
        ex = magnitude_excess(kappa_ab[p], own[a], start_pair[p], own[b])
        frames.append(pd.DataFrame({"pair": p, "layer": kappa_ab.index, "observed": ex.observed,
                                    "kappa_a_start": own[a].to_numpy(float), "kappa_starts": start_pair[p].to_numpy(float),
                                    "kappa_b_start": own[b].to_numpy(float), "predicted": ex.predicted,
                                    "excess": ex.excess}))
    return pd.concat(frames, ignore_index=True)


def verdict_side(ci: Optional[Sequence[float]]) -> str:
    """'more' / 'less' when the interval excludes 0 on that side, 'inconclusive' when it contains 0
    or there is none."""
    if ci is None or not all(isinstance(x, (int, float)) and math.isfinite(x) for x in ci):
        return "inconclusive"
    return "more" if ci[0] > 0 else "less" if ci[1] < 0 else "inconclusive"


def claim_beyond_magnitude(kappa_ab: pd.DataFrame, own: pd.DataFrame, start_pair: pd.DataFrame,
                           types: Mapping[str, str], k: int, n: int) -> dict:
    """Observed minus predicted kappa (`magnitude_chain`), mean over layers per pair, then over pairs."""
    chain = magnitude_chain(kappa_ab, own, start_pair)
    by_pair = chain.groupby("pair", sort=False)
    per_layer = chain.groupby("layer", sort=False)["excess"].mean().reindex(kappa_ab.index)
    test = sign_flip_test(per_layer.to_numpy(float), n_resamples=n, seed=_stream("beyond_magnitude", k))
    est = over_pairs(by_pair["excess"].mean().to_dict())
    by_type = {}
    for t in sorted({types[x] for x in per_layer.index}):
        sel = per_layer[[types[x] == t for x in per_layer.index]]
        by_type[t] = {"layers": len(sel), "mean_excess": float(sel.mean()), "layers_above": int((sel > 0).sum())}
    seeds = list(dict.fromkeys(s for p in kappa_ab.columns for s in parse_pair(p)))
    rule = test.rule.replace("per-seed differences", "per-layer excesses (averaged over the pairs)")
    return {**est, "p_value": test.p, "p_value_rule": rule, "metric": "kappa",
            "verdict": verdict_side(est["ci"]),
            "observed_agreement": float(chain["observed"].mean()),
            "predicted_agreement": float(chain["predicted"].mean()),
            "own_start_agreement": float(own[seeds].to_numpy().mean()),
            "own_start_agreement_by_seed": {str(s): float(own[s].mean()) for s in seeds},
            "start_pair_agreement": float(chain["kappa_starts"].mean()),
            "layers": len(per_layer), "layers_above": int((per_layer > 0).sum()),
            "layers_above_by_pair": {p: int((g["excess"] > 0).sum()) for p, g in by_pair},
            "by_type": by_type}


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
    return {**over_pairs(effects), "p_value": test.p, "p_value_rule": test.rule, **detail,
            "residual_difference": float(e[:h].mean() - e[h:].mean())}


# -- the summary --------------------------------------------------------------------------------
def _over_rounds(values: Sequence[float]) -> dict:
    v = [float(x) for x in values]
    return {"mean": float(np.mean(v)), "n": len(v), "per_round": v, "note": NESTED}


_ROUND_KEEP = ("effect", "ci", "p_value", "pairs", "r", "layers_above", "observed_agreement", "predicted_agreement",
               "verdict")


def _claim(name: str, per_round: list[tuple[int, dict]], extra: dict) -> dict:
    """The last round's result as the claim, with every round's headline numbers as detail."""
    k, last = per_round[-1]
    head = ("effect", "ci", "p_value", "pairs")
    return {"effect": last["effect"], "ci": last["ci"], "ci_level": CI_LEVEL, "ci_rule": last["ci_rule"],
            "se": last["se"], "pairs": last["pairs"], "n_pairs": len(last["pairs"]), "unit": UNIT,
            "test": TEST[name], "p_value": last["p_value"], "round": k, "direction": "positive", "available": True,
            **{key: v for key, v in last.items() if key not in head + ("ci_rule", "se")}, **extra,
            "per_round": [{"round": kk, **{key: r[key] for key in _ROUND_KEEP if key in r}} for kk, r in per_round],
            "per_round_note": NESTED}


def _unavailable(name: str, k: int, extra: dict) -> dict:
    return {"effect": None, "ci": None, "ci_level": CI_LEVEL, "test": TEST[name], "p_value": None, "round": k,
            "direction": "positive", "available": False, "unit": UNIT, **extra}


def _mean_dicts(rows: Sequence[dict]) -> dict:
    """Key-wise mean of per-pair dicts of numbers."""
    return {key: float(np.mean([r[key] for r in rows])) for key in rows[0]}


def summarize(df: pd.DataFrame, metric: str = "kappa", sizes: Optional[Mapping[str, int]] = None,
              seeds: Sequence[int] = (), *, fan_in: Optional[Mapping[str, int]] = None,
              resolutions: Optional[Mapping[str, int]] = None, baseline: Optional[pd.DataFrame] = None,
              start_pair: Optional[pd.DataFrame] = None, baseline_source: str = "",
              resamples: int = RESAMPLES, layer_types: Optional[Mapping[str, str]] = None,
              theta0: str = "shared") -> dict:
    """Per-round detail and the four claims (`claims`), read at the last round, from the similarity
    table (columns pair, round + COLUMNS; without `pair`, one pair of `seeds`' first two).

    `fan_in`: layer -> fan-in (default: none, claim left out); `resolutions`: block -> feature-map
    size (default: the U-Net's mirror rule); `layer_types`: layer -> stratum (default: from the name,
    `agreement.layer_type`); `baseline`: rows (round, seed, layer, [metric,] value) of each ticket's
    agreement with its own start's magnitude mask (kappa rows feed the magnitude claim, `metric` rows
    the per-level overlay; without a metric column the values are kappa); `theta0`: shared (one
    theta0 behind every ticket) or per_seed (the population says the claims do not apply); `start_pair`: rows (pair,
    round, layer, value) of kappa between the two starts' magnitude masks. Without both, or with
    `baseline` None (no shared start, `baseline_source` says why), the magnitude claim is unavailable."""
    df = _with_pairs(df, seeds)
    pairs = list(dict.fromkeys(df["pair"]))
    seeds = list(seeds) or list(dict.fromkeys(s for p in pairs for s in parse_pair(p)))
    values, kappas = chance_corrected(df, metric), chance_corrected(df, "kappa")
    types = {name: (layer_types or {}).get(name) or layer_type(name) for name in values["layer"].unique()}
    levels = resolution_pairs(values["block"].unique().tolist(), resolutions)
    have_magnitude = baseline is not None and start_pair is not None
    per_round, claims_by_round = [], {name: [] for name in TEST}
    for k in sorted(int(x) for x in df["round"].unique()):
        rows = values[values["round"] == k]
        meta, wide = _wide(rows, pairs)
        part = df[df["round"] == k]
        halves = {p: upstream_vs_downstream(part[part["pair"] == p], metric, sizes) for p in pairs}
        row = {"round": k, **_mean_dicts(list(halves.values())),
               "difference_by_pair": {p: r["difference"] for p, r in halves.items()}}
        row["layers"] = int(row["layers"])
        blocks = wide.mean(axis=1).groupby(meta["block"]).mean()
        row["block_mean"] = {b: float(blocks[b]) for b in sorted(blocks.index, key=block_rank)}
        per_round.append(row)
        claims_by_round["upstream_vs_downstream"].append((k, claim_upstream(wide, meta, types, k, resamples)))
        overlay = None
        if baseline is not None:
            base = baseline[baseline["round"] == k]
            if "metric" in base.columns:
                base_kappa, base_metric = base[base["metric"] == "kappa"], base[base["metric"] == metric]
            else:
                base_kappa, base_metric = base, base if metric == "kappa" else base.iloc[:0]
            if len(base_metric):
                overlay = base_metric.groupby("layer")["value"].mean()
            if have_magnitude:
                own = base_kappa.pivot(index="layer", columns="seed", values="value").reindex(meta.index)
                sp = start_pair[start_pair["round"] == k].assign(pair=lambda d: d["pair"].astype(str))
                sp = sp.pivot(index="layer", columns="pair", values="value").reindex(index=meta.index, columns=pairs)
                _, kwide = _wide(kappas[kappas["round"] == k], pairs)
                claims_by_round["beyond_magnitude"].append(
                    (k, claim_beyond_magnitude(kwide, own, sp, types, k, resamples)))
        matched = claim_resolution(wide, meta, types, levels, k, resamples, overlay)
        if matched is not None:
            claims_by_round["resolution_matched"].append((k, matched))
        if fan_in is not None:
            claims_by_round["fan_in"].append((k, claim_fan_in(wide, meta, types, fan_in, k, resamples)))

    last = per_round[-1]["round"]
    claims = {"upstream_vs_downstream": _claim("upstream_vs_downstream", claims_by_round["upstream_vs_downstream"],
                                               {"rule": SPLIT_RULE})}
    if claims_by_round["resolution_matched"]:
        claims["resolution_matched"] = _claim("resolution_matched", claims_by_round["resolution_matched"],
                                              {"pairing_rule": PAIRING_RULE})
    else:
        claims["resolution_matched"] = _unavailable("resolution_matched", last, {
            "pairing_rule": PAIRING_RULE, "levels": [],
            "reason": "no encoder block and its same-resolution decoder block both have prunable layers"})
    if have_magnitude:
        claims["beyond_magnitude"] = _claim("beyond_magnitude", claims_by_round["beyond_magnitude"], {
            "baseline_source": baseline_source, "prediction_is": MAGNITUDE_PREDICTION,
            "verdict_is": "more / less: the interval lies above / below 0; inconclusive: it contains 0 (never "
                          "read as 'no more than')"})
    else:
        why = baseline_source or "no magnitude baseline was given"
        if baseline is not None:
            why = "no kappa between the two starts' magnitude masks was given, so there is no prediction"
        claims["beyond_magnitude"] = _unavailable("beyond_magnitude", last, {"baseline_source": why,
                                                                             "verdict": "inconclusive"})
    if fan_in is not None:
        fan = claims_by_round["fan_in"]
        extra = {"effect_is": "coefficient of the upstream-half indicator in agreement ~ 1 + log fan-in + upstream "
                              "over the two halves' layers: the upstream-minus-downstream difference at equal log "
                              "fan-in (Frisch-Waugh-Lovell), per pair and averaged over pairs; residual_difference "
                              "is the plain mean residual difference of the pair-averaged agreement",
                 "p_value_is": "permutation p-value of the partialled effect, within layer types; r has none"}
        if fan[-1][1]["effect"] is None:
            claims["fan_in"] = _unavailable("fan_in", last, {
                **{key: v for key, v in fan[-1][1].items() if key not in ("effect", "ci", "p_value")}, **extra,
                "reason": "log fan-in alone determines which half a layer is in, so its effect cannot be separated"})
        else:
            claims["fan_in"] = _claim("fan_in", [(kk, c) for kk, c in fan if c["effect"] is not None], extra)

    diffs = [r["difference"] for r in per_round]
    rule = claims["upstream_vs_downstream"]["ci_rule"]
    out = {"metric": metric, "agreement_is": METRIC_IS[metric], "unit": UNIT,
           "population": {"unit": UNIT, "is": POPULATION if theta0 == "shared" else POPULATION_PER_SEED,
                          "seeds": list(seeds), "pairs": pairs, "n_pairs": len(pairs),
                          "theta0": "shared by every seed" if theta0 == "shared" else "per seed",
                          "seeds_vary": "data order only" if theta0 == "shared" else "data order and initialisation"},
           "seeds": list(seeds), "pairs": pairs, "n_pairs": len(pairs),
           "interval_rule": f"{PAIR_RULE}; here: {rule}", "permutation_rule": PERMUTATION_RULE,
           "strata_rule": LAYER_TYPE_RULE,
           "layer_types": {t: sum(v == t for v in types.values()) for t in sorted(set(types.values()))},
           "split": SPLIT_RULE,
           "difference_is": f"upstream mean {metric} minus downstream mean {metric} (chance-corrected), "
                            "each layer counting once, averaged over the ticket pairs",
           "slope_is": f"least-squares slope of {metric} vs normalised depth (0 first layer, 1 last), averaged over pairs",
           "rounds": per_round, "difference": _over_rounds(diffs),
           "slope": _over_rounds([r["slope"] for r in per_round])}
    if sizes is not None:
        out["difference_weighted"] = _over_rounds([r["difference_weighted"] for r in per_round])
    out["claims"] = claims
    out["finding"] = finding(claims, metric, seeds, diffs) if theta0 == "shared" else (
        f"Not tested: {POPULATION_PER_SEED}. The agreement of these pairs is in similarity.csv and the figures, "
        "as a description only.")
    return out


# -- the sentence ---------------------------------------------------------------------------------
def _est(c: Mapping) -> str:
    if c.get("effect") is None:
        return "undefined"
    text = f"{c['effect']:+.3f}"
    if c.get("ci") is not None:
        text += f", 95 % CI [{c['ci'][0]:+.3f}, {c['ci'][1]:+.3f}]"
    else:
        text += " (one pair: no interval)"
    if len(c.get("pairs") or {}) > 1:
        text += "; per pair " + ", ".join(f"{p} {v:+.3f}" for p, v in c["pairs"].items())
    return text


def _p(c: Mapping, where: str) -> str:
    return f"p = {c['p_value']:.2g} {where}" if isinstance(c.get("p_value"), (int, float)) else "no p-value"


def _verb(c: Mapping, more: str = "agree more than", less: str = "agree less than",
          same: str = "agree neither distinguishably more nor less than",
          none: str = "cannot be told apart across pairs from") -> str:
    if c.get("ci") is None:
        return none
    return {"more": more, "less": less, "inconclusive": same}[verdict_side(c["ci"])]


def magnitude_sentence(mag: Mapping) -> str:
    """The magnitude claim in words, following its interval: 'more than' / 'less than' their starting
    magnitudes predict, or inconclusive; never 'no more than'."""
    if not mag.get("available"):
        return f"no magnitude prediction: {mag.get('baseline_source', 'no baseline')}"
    numbers = (f"kappa {mag['observed_agreement']:.3f} observed vs {mag['predicted_agreement']:.3f} predicted if each "
               f"ticket were its own start's magnitude mask plus independent changes; observed minus predicted "
               f"{_est(mag)}; above the prediction in {mag['layers_above']} of {mag['layers']} layers; "
               f"{_p(mag, '(sign-flip over layers)')}")
    head = {"more": "the tickets agree more than their starting magnitudes predict",
            "less": "the tickets agree less than their starting magnitudes predict",
            "inconclusive": "whether the tickets agree more or less than their starting magnitudes predict is "
                            "inconclusive"}[verdict_side(mag.get("ci"))]
    if mag.get("ci") is None:
        head += " (one pair of tickets: no interval)"
    return f"{head} ({numbers})"


def finding(claims: Mapping[str, dict], metric: str, seeds: Sequence, diffs: Sequence[float] = ()) -> str:
    """One paragraph computed from the claims' effects, intervals and p-values."""
    up = claims["upstream_vs_downstream"]
    n_pairs = up.get("n_pairs", 1)
    names = ", ".join(str(s) for s in seeds)
    rough = ", 2 df: very rough" if len(seeds) == 3 else ""
    if n_pairs > 1:
        who = (f"Over the {n_pairs} pairs of tickets of seeds {names} (one theta0, the seeds vary the data order "
               f"only; intervals: delete-one-seed jackknife over the {len(seeds)} seeds{rough})")
    else:
        who = (f"For the one pair of tickets of seeds {names} (one theta0, data order varied; 2 seeds give no "
               "seed-level interval)")
    rounds = ""
    if len(diffs) > 1:
        rounds = (f"; per round {', '.join(f'{d:+.3f}' for d in diffs)} "
                  "(nested rounds of the same tickets, not replicates)")
    without = up.get("without_skip") or {}
    skip = ""
    if without.get("layers_left_out"):
        skip = (f"; without the {len(without['layers_left_out'])} 1x1 skip convs {_est(without)}, "
                f"{_p(without, 'within layer types')}")
    parts = [f"{who}, at round {up['round']}: upstream layers {_verb(up)} downstream ones ({metric} upstream "
             f"minus downstream {_est(up)}; {_p(up, 'within layer types')}{skip}{rounds})"]
    res = claims["resolution_matched"]
    if res.get("available", True):
        parts.append(f"at matched resolution, encoder blocks {_verb(res)} their decoder counterparts "
                     f"({_est(res)}; {_p(res, 'within level and layer type')}; mean over {len(res['levels'])} levels)")
    else:
        parts.append(f"no resolution-matched comparison: {res['reason']}")
    fan = claims.get("fan_in")
    if fan is not None:
        corr = (f"per-layer {metric} vs log fan-in: r = {fan['r']:+.2f} (mean over pairs; no p-value, the layers "
                "of one network are not independent draws)")
        if fan.get("available") is False:
            parts.append(f"{corr}, but {fan['reason']}")
        else:
            verb = _verb(fan, more="remains positive", less="is negative", same="is not distinguishable from 0",
                         none="is, for this one pair,")
            parts.append(f"{corr}; with log fan-in partialled out the upstream-minus-downstream difference {verb} "
                         f"({_est(fan)}; {_p(fan, 'within layer types')}; log fan-in itself tracks the split, "
                         f"r = {fan['fan_in_vs_upstream_r']:+.2f})")
    parts.append(magnitude_sentence(claims["beyond_magnitude"]))
    text = "; ".join(parts) + "."
    return text[0].upper() + text[1:]
