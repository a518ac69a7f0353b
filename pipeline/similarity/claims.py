"""Claims about two tickets' per-layer agreement, each with an effect, a 95 % interval and a p-value.

The unit is the layer. Intervals are percentile bootstraps that resample layers with replacement
within strata (the two halves of the path, or each level's encoder and decoder side); p-values are
two-sided permutation tests that exchange layers between the groups compared (or flip the signs of
per-layer paired differences). Layers of one network are not independent draws, so these describe
this pair of tickets' layers, not a population of tickets.

Agreement is always chance-corrected (`similarity.metric`): Cohen's kappa, or Jaccard minus the
Jaccard of independent masks of the same densities; both are 0 for unrelated masks.

IMP rounds are nested (round k's ticket is cut from round k-1's), so values of different rounds are
reported as per-round values, never as replicates with a spread; claims are read at the last round.
"""
from __future__ import annotations

from typing import Mapping, Optional, Sequence

import numpy as np
import pandas as pd

from pipeline.similarity.agreement import PAIRING_RULE, block_rank, resolution_pairs

CI_LEVEL = 0.95
RESAMPLES = 2000  # bootstrap resamples and permutations per test (similarity.resamples overrides)
SEED = 0          # every test draws from its own stream, keyed by (SEED, claim, round): byte-stable output

SPLIT_RULE = ("layers on the input->output path in forward order (the time-embedding MLP excluded: it "
              "feeds every block); upstream = the first floor(L/2) of the L layers, downstream = the "
              "last floor(L/2) (the middle layer is left out when L is odd)")
METRIC_IS = {"kappa": "Cohen's kappa of kept/pruned agreement (0 = chance, 1 = identical)",
             "jaccard": "Jaccard of the kept weights minus its chance value pq / (p + q - pq) (0 = chance)"}
TEST = {
    "upstream_vs_downstream": "bootstrap over layers resampled within each half; two-sided permutation test "
                              "exchanging layers between the halves",
    "resolution_matched": "bootstrap over layers resampled within each level's encoder and decoder block; "
                          "two-sided permutation test exchanging layers between encoder and decoder within each level",
    "beyond_magnitude": "bootstrap over layers of the per-layer difference; two-sided sign-flip permutation test "
                        "of the per-layer differences",
    "fan_in": "bootstrap over layers resampled within each half, refitting the regression each time; two-sided "
              "Freedman-Lane permutation test (residuals of agreement on log fan-in permuted across layers)",
}
NESTED = "IMP rounds are nested (each ticket is cut from the previous round's), so these are per-round values, not replicates"
_CLAIM_KEY = {name: i for i, name in enumerate(TEST)}


# -- the per-layer values -----------------------------------------------------------------------
def chance_corrected(df: pd.DataFrame, metric: str = "kappa") -> pd.DataFrame:
    """Rows of the similarity table reduced to one chance-corrected agreement `value` per layer
    (and round, if the table has rounds): kappa as is, or jaccard - jaccard_chance."""
    keys = [c for c in ("round", "layer", "block", "depth") if c in df.columns]
    if metric == "kappa":
        return df.loc[df["metric"] == "kappa", keys + ["value"]].reset_index(drop=True)
    if metric == "jaccard":
        j = df.loc[df["metric"] == "jaccard", keys + ["value"]]
        c = df.loc[df["metric"] == "jaccard_chance", keys + ["value"]]
        out = j.merge(c, on=keys, suffixes=("", "_chance"), validate="one_to_one")
        return out.assign(value=out["value"] - out["value_chance"]).drop(columns="value_chance")
    raise ValueError(f"agreement metric must be kappa or jaccard, got {metric!r}")


def path_layers(df: pd.DataFrame, metric: str = "kappa") -> pd.DataFrame:
    """One round's chance-corrected rows on the input->output path, sorted by depth, pos in [0, 1]."""
    rows = chance_corrected(df, metric)
    rows = rows[rows["block"] != "time"].sort_values("depth").reset_index(drop=True)
    rows["pos"] = np.arange(len(rows)) / max(len(rows) - 1, 1)
    return rows


def upstream_vs_downstream(df: pd.DataFrame, metric: str = "kappa",
                           sizes: Optional[Mapping[str, int]] = None) -> dict:
    """For one round's rows: mean agreement of the upstream and downstream halves (each layer
    counts once), their difference, the same weighted by layer size (if `sizes`), and the
    least-squares slope of agreement against normalised depth (0 = first layer, 1 = last)."""
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
        out.update(slope=0.0, slope_pvalue=1.0, slope_r=0.0, spearman_rho=0.0)
        return out
    fit = stats.linregress(rows["pos"].to_numpy(float), y)
    out.update(slope=float(fit.slope), slope_pvalue=float(fit.pvalue), slope_r=float(fit.rvalue),
               spearman_rho=float(stats.spearmanr(rows["depth"], y).statistic))
    return out


# -- resampling primitives ----------------------------------------------------------------------
def _rng(claim: str, k: int) -> np.random.Generator:
    return np.random.default_rng([SEED, _CLAIM_KEY[claim], int(k)])


def _interval(samples: np.ndarray) -> list[float]:
    tail = 100 * (1 - CI_LEVEL) / 2
    lo, hi = np.percentile(samples, [tail, 100 - tail])
    return [float(lo), float(hi)]


def _p_two_sided(null: np.ndarray, observed: float) -> float:
    """(1 + #{|null| >= |observed|}) / (1 + n): never 0, exact-tie tolerant."""
    hits = np.abs(null) >= abs(observed) - 1e-12 * max(1.0, abs(observed))
    return float((1 + hits.sum()) / (1 + len(null)))


def _boot_means(x: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    return x[rng.integers(0, len(x), (n, len(x)))].mean(axis=1)


def _contrast(a: np.ndarray, b: np.ndarray, n: int, rng: np.random.Generator):
    """mean(a) - mean(b), its bootstrap draws (a and b resampled separately) and its permutation null."""
    boot = _boot_means(a, n, rng) - _boot_means(b, n, rng)
    pooled = rng.permuted(np.tile(np.concatenate([a, b]), (n, 1)), axis=1)
    null = pooled[:, :len(a)].mean(axis=1) - pooled[:, len(a):].mean(axis=1)
    return float(a.mean() - b.mean()), boot, null


def _result(effect: float, boot: np.ndarray, null: np.ndarray) -> dict:
    return {"effect": effect, "ci": _interval(boot), "p_value": _p_two_sided(null, effect)}


# -- the four claims, for one round -------------------------------------------------------------
def _halves(rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    y, h = rows["value"].to_numpy(float), len(rows) // 2
    if h == 0:
        raise ValueError("need at least two layers on the input->output path to compare halves")
    return y[:h], y[len(y) - h:]


def claim_upstream(path: pd.DataFrame, k: int, n: int) -> dict:
    up, down = _halves(path)
    out = _result(*_contrast(up, down, n, _rng("upstream_vs_downstream", k)))
    out.update(upstream_mean=float(up.mean()), downstream_mean=float(down.mean()), layers_per_half=len(up))
    return out


def claim_resolution(rows: pd.DataFrame, pairs: Sequence[dict], k: int, n: int,
                     baseline: Optional[pd.Series] = None) -> Optional[dict]:
    """Encoder minus decoder mean agreement per level pair, averaged over the levels."""
    rng = _rng("resolution_matched", k)
    levels, boots, nulls = [], [], []
    for pair in pairs:
        enc = rows.loc[rows["block"] == pair["encoder"]]
        dec = rows.loc[rows["block"] == pair["decoder"]]
        if enc.empty or dec.empty:
            continue
        a, b = enc["value"].to_numpy(float), dec["value"].to_numpy(float)
        effect, boot, null = _contrast(a, b, n, rng)
        level = {**pair, "encoder_layers": len(a), "decoder_layers": len(b),
                 "encoder_mean": float(a.mean()), "encoder_ci": _interval(_boot_means(a, n, rng)),
                 "decoder_mean": float(b.mean()), "decoder_ci": _interval(_boot_means(b, n, rng)),
                 **_result(effect, boot, null)}
        if baseline is not None:
            level["encoder_baseline"] = float(baseline.reindex(enc["layer"]).mean())
            level["decoder_baseline"] = float(baseline.reindex(dec["layer"]).mean())
        levels.append(level)
        boots.append(boot)
        nulls.append(null)
    if not levels:
        return None  # no encoder/decoder pair with prunable layers on both sides
    out = _result(float(np.mean([lv["effect"] for lv in levels])), np.mean(boots, axis=0), np.mean(nulls, axis=0))
    out["levels"] = levels
    return out


def claim_beyond_magnitude(ticket: pd.Series, own: pd.DataFrame, k: int, n: int,
                           start_pair: Optional[pd.Series] = None) -> dict:
    """Ticket-vs-ticket agreement minus the mean of each ticket's agreement with its own start's
    magnitude mask, per layer (`ticket`: layer -> value; `own`: layer x seed)."""
    own = own.reindex(ticket.index)
    base = own.mean(axis=1).to_numpy(float)
    d = ticket.to_numpy(float) - base
    rng = _rng("beyond_magnitude", k)
    flips = rng.choice(np.array([-1.0, 1.0]), size=(n, len(d)))
    out = _result(float(d.mean()), _boot_means(d, n, rng), (flips * d).mean(axis=1))
    out.update(ticket_agreement=float(ticket.mean()), baseline_agreement=float(base.mean()),
               baseline_agreement_by_seed={str(s): float(own[s].mean()) for s in own.columns}, layers=len(d))
    if start_pair is not None:
        out["start_pair_agreement"] = float(start_pair.reindex(ticket.index).mean())
    return out


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


def claim_fan_in(path: pd.DataFrame, fan_in: Mapping[str, int], k: int, n: int) -> Optional[dict]:
    """Correlation of agreement with log fan-in over the path, and the upstream-vs-downstream effect
    with log fan-in partialled out (both halves, fitted together). None when fan-in alone decides
    which half a layer is in (the effect is then not identifiable)."""
    from scipy import stats

    x_all = np.log(path["layer"].map(fan_in).to_numpy(float))
    y_all = path["value"].to_numpy(float)
    if np.ptp(x_all) > 0 and np.ptp(y_all) > 0:
        corr = stats.pearsonr(x_all, y_all)
        r, p = float(corr.statistic), float(corr.pvalue)
        slope = float(stats.linregress(x_all, y_all).slope)
    else:
        r, p, slope = 0.0, 1.0, 0.0
    h = len(path) // 2
    sel = np.r_[0:h, len(path) - h:len(path)]
    x, y = x_all[sel], y_all[sel]
    effect = float(_partial_effect(x, y, h))
    upstream = np.r_[np.ones(h), np.zeros(h)]
    collinear = float(np.corrcoef(x, upstream)[0, 1]) if np.ptp(x) > 0 else 0.0
    detail = {"r": r, "r_p_value": p, "slope_per_log_fan_in": slope, "fan_in_vs_upstream_r": collinear,
              "correlation": {"r": r, "p_value": p, "layers": len(path),
                              "test": "Pearson r of agreement with log fan-in over the path layers, t-test p-value"}}
    if not np.isfinite(effect):
        return {"effect": None, "ci": None, "p_value": None, **detail}
    rng = _rng("fan_in", k)
    idx = np.concatenate([rng.integers(0, h, (n, h)), h + rng.integers(0, h, (n, h))], axis=1)
    boot = _partial_effect(x[idx], y[idx], h)
    boot = boot[np.isfinite(boot)]  # resamples where fan-in happens to determine the split
    # Freedman-Lane: permute the residuals of y ~ 1 + x; the indicator's coefficient on the
    # permuted data reduces to perm(e) . d_res / |d_res|^2
    xc = x - x.mean()
    e, dr = _residualize(y, xc), _residualize(upstream, xc)
    null = rng.permuted(np.tile(e, (n, 1)), axis=1) @ dr / (dr @ dr)
    out = _result(effect, boot, null)
    out.update(detail, residual_difference=float(e[:h].mean() - e[h:].mean()), bootstrap_resamples_used=len(boot))
    return out


# -- the summary --------------------------------------------------------------------------------
def _over_rounds(values: Sequence[float]) -> dict:
    v = [float(x) for x in values]
    return {"mean": float(np.mean(v)), "n": len(v), "per_round": v, "note": NESTED}


def _claim(name: str, per_round: list[tuple[int, dict]], extra: dict) -> dict:
    """The last round's result as the claim, with every round's headline numbers as detail."""
    k, last = per_round[-1]
    keep = ("effect", "ci", "p_value", "r", "r_p_value", "ticket_agreement", "baseline_agreement")
    return {"effect": last["effect"], "ci": last["ci"], "ci_level": CI_LEVEL, "test": TEST[name],
            "p_value": last["p_value"], "round": k, "direction": "positive", "available": True,
            **{key: v for key, v in last.items() if key not in ("effect", "ci", "p_value")}, **extra,
            "per_round": [{"round": kk, **{key: r[key] for key in keep if key in r}} for kk, r in per_round],
            "per_round_note": NESTED}


def _unavailable(name: str, k: int, extra: dict) -> dict:
    return {"effect": None, "ci": None, "ci_level": CI_LEVEL, "test": TEST[name], "p_value": None, "round": k,
            "direction": "positive", "available": False, **extra}


def summarize(df: pd.DataFrame, metric: str = "kappa", sizes: Optional[Mapping[str, int]] = None,
              seeds: Sequence[int] = (), *, fan_in: Optional[Mapping[str, int]] = None,
              resolutions: Optional[Mapping[str, int]] = None, baseline: Optional[pd.DataFrame] = None,
              start_pair: Optional[pd.DataFrame] = None, baseline_source: str = "",
              resamples: int = RESAMPLES) -> dict:
    """Per-round upstream/downstream detail and the four claims (`claims`), read at the last round,
    from the similarity table (columns round + COLUMNS). `fan_in`: layer -> fan-in (default: none,
    claim left out); `resolutions`: block -> feature-map size (default: the U-Net's mirror rule);
    `baseline`: rows (round, seed, layer, value) of each ticket's agreement with its start's
    magnitude mask (None: no such start, `baseline_source` says why); `start_pair`: rows
    (round, layer, value) of the two starts' magnitude masks against each other."""
    values = chance_corrected(df, metric)
    per_round, claims_by_round = [], {name: [] for name in TEST}
    pairs = resolution_pairs(values["block"].unique().tolist(), resolutions)
    for k, part in df.groupby("round", sort=True):
        k = int(k)
        row = {"round": k, **upstream_vs_downstream(part, metric, sizes)}
        blocks = values[values["round"] == k].groupby("block")["value"].mean()
        row["block_mean"] = {b: float(blocks[b]) for b in sorted(blocks.index, key=block_rank)}
        per_round.append(row)
        rows, path = values[values["round"] == k], path_layers(part, metric)
        claims_by_round["upstream_vs_downstream"].append((k, claim_upstream(path, k, resamples)))
        base = own = None
        if baseline is not None:
            own = baseline[baseline["round"] == k].pivot(index="layer", columns="seed", values="value")
            base = own.mean(axis=1)
            ticket = rows.set_index("layer")["value"]
            pair = None if start_pair is None else start_pair[start_pair["round"] == k].set_index("layer")["value"]
            claims_by_round["beyond_magnitude"].append((k, claim_beyond_magnitude(ticket, own, k, resamples, pair)))
        matched = claim_resolution(rows, pairs, k, resamples, base)
        if matched is not None:
            claims_by_round["resolution_matched"].append((k, matched))
        if fan_in is not None:
            claims_by_round["fan_in"].append((k, claim_fan_in(path, fan_in, k, resamples)))

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
    if baseline is not None:
        claims["beyond_magnitude"] = _claim("beyond_magnitude", claims_by_round["beyond_magnitude"], {
            "baseline_source": baseline_source,
            "baseline_is": f"per layer, each ticket's {metric} with the mask keeping exactly the ticket's per-layer "
                           "count of the largest-magnitude weights of that ticket's own rewind point"})
    else:
        claims["beyond_magnitude"] = _unavailable("beyond_magnitude", last, {
            "baseline_source": baseline_source or "no magnitude baseline was given"})
    if fan_in is not None:
        fan = claims_by_round["fan_in"]
        extra = {"effect_is": "coefficient of the upstream-half indicator in agreement ~ 1 + log fan-in + upstream "
                              "over the two halves' layers: the upstream-minus-downstream difference at equal log "
                              "fan-in (Frisch-Waugh-Lovell: residual of agreement on log fan-in regressed on the "
                              "indicator's residual); residual_difference is the plain mean residual difference",
                 "p_value_is": "permutation p-value of the partialled effect; r_p_value is the correlation's"}
        if fan[-1][1]["effect"] is None:
            claims["fan_in"] = _unavailable("fan_in", last, {
                **{key: v for key, v in fan[-1][1].items() if key not in ("effect", "ci", "p_value")}, **extra,
                "reason": "log fan-in alone determines which half a layer is in, so its effect cannot be separated"})
        else:
            claims["fan_in"] = _claim("fan_in", [(kk, c) for kk, c in fan if c["effect"] is not None], extra)

    diffs = [r["difference"] for r in per_round]
    out = {"metric": metric, "agreement_is": METRIC_IS[metric], "seeds": list(seeds), "split": SPLIT_RULE,
           "difference_is": f"upstream mean {metric} minus downstream mean {metric} (chance-corrected), "
                            "each layer counting once",
           "slope_is": f"least-squares slope of {metric} vs normalised depth (0 first layer, 1 last)",
           "rounds": per_round, "difference": _over_rounds(diffs),
           "slope": _over_rounds([r["slope"] for r in per_round])}
    if sizes is not None:
        out["difference_weighted"] = _over_rounds([r["difference_weighted"] for r in per_round])
    out["claims"] = claims
    out["finding"] = finding(claims, metric, seeds, diffs)
    return out


# -- the sentence ---------------------------------------------------------------------------------
def _ci(c: dict) -> str:
    return f"{c['effect']:+.3f}, 95 % CI [{c['ci'][0]:+.3f}, {c['ci'][1]:+.3f}], p = {c['p_value']:.2g}"


def _side(c: dict) -> str:
    """more / less / indistinguishable, from the interval alone."""
    lo, hi = c["ci"]
    return "more" if lo > 0 else "less" if hi < 0 else "same"


def finding(claims: Mapping[str, dict], metric: str, seeds: Sequence[int], diffs: Sequence[float] = ()) -> str:
    """One paragraph computed from the claims' effects, intervals and p-values."""
    pair = f"the tickets of seeds {seeds[0]} and {seeds[1]}" if len(seeds) >= 2 else "the two tickets"
    up = claims["upstream_vs_downstream"]
    verb = {"more": "agree more than", "less": "agree less than",
            "same": "do not agree distinguishably more than"}[_side(up)]
    rounds = ""
    if len(diffs) > 1:
        rounds = (f"; per round {', '.join(f'{d:+.3f}' for d in diffs)} "
                  "(nested rounds of one seed pair, not replicates)")
    parts = [f"At round {up['round']}, upstream layers of {pair} {verb} downstream ones "
             f"({metric} upstream minus downstream {_ci(up)}{rounds})"]
    res = claims["resolution_matched"]
    if res.get("available", True):
        verb = {"more": "agree more than", "less": "agree less than",
                "same": "do not agree distinguishably more than"}[_side(res)]
        parts.append(f"at matched resolution, encoder blocks {verb} their decoder counterparts "
                     f"({_ci(res)}, mean over {len(res['levels'])} levels)")
    else:
        parts.append(f"no resolution-matched comparison: {res['reason']}")
    fan = claims.get("fan_in")
    if fan is not None and fan.get("available") is False:
        parts.append(f"per-layer {metric} vs log fan-in: r = {fan['r']:+.2f} (p = {fan['r_p_value']:.2g}), "
                     f"but {fan['reason']}")
    elif fan is not None:
        verb = {"more": "remains positive", "less": "is negative",
                "same": "is not distinguishable from 0"}[_side(fan)]
        parts.append(f"per-layer {metric} vs log fan-in: r = {fan['r']:+.2f} (p = {fan['r_p_value']:.2g}), "
                     f"and with log fan-in partialled out the upstream-minus-downstream difference {verb} "
                     f"({_ci(fan)}; log fan-in itself tracks the split, r = {fan['fan_in_vs_upstream_r']:+.2f})")
    mag = claims["beyond_magnitude"]
    if mag.get("available"):
        side = _side(mag)
        if side == "more":
            verb = "agree with each other more than each agrees with"
        elif side == "less":
            verb = "agree with each other less than each agrees with"
        else:
            verb = "agree with each other no more than each agrees with"
        tail = "" if side == "more" else ", so their agreement is no more than their starting magnitudes explain"
        parts.append(f"the tickets {verb} the magnitude mask of its own rewind point ({metric} "
                     f"{mag['ticket_agreement']:.3f} vs {mag['baseline_agreement']:.3f}; difference {_ci(mag)}){tail}")
    else:
        parts.append(f"no trivial-agreement baseline: {mag['baseline_source']}")
    text = "; ".join(parts) + "."
    return text[0].upper() + text[1:]
