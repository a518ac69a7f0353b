"""The similarity summary (artifacts/similarity/summary.json): per-round detail and the four claims of
pipeline.similarity.claims, read at the last round, with the population and rules they rest on. Numbers,
statuses and the labels of what each number is; the paragraph the report prints is written by
pipeline.report.text (`similarity_finding`).
"""
from __future__ import annotations

from typing import Mapping, Optional, Sequence

import numpy as np
import pandas as pd

from pipeline.similarity.agreement import LAYER_TYPE_RULE, PAIRING_RULE, block_rank, layer_type, parse_pair, resolution_pairs
from pipeline.similarity.claims import (CI_LEVEL, RESAMPLES, TEST, _wide, _with_pairs, chance_corrected,
                                        claim_fan_in, claim_resolution, claim_upstream, halves_of,
                                        upstream_vs_downstream)
from pipeline.similarity.crossed import INTERVAL_RULE, VERDICT_RULE
from pipeline.similarity.magnitude import BINS_RULE, claim_beyond_magnitude

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
             "(U-statistic); 95 % interval over ticket pairs and layers: " + INTERVAL_RULE +
             "; ci_pairs: the pair part alone (delete-one-seed jackknife, Student-t, n - 1 df), descriptive")
PERMUTATION_RULE = ("p-values: permutations of the per-layer agreement averaged over the pairs, shuffled only "
                    "within layer-type strata; they describe this network's layers, the interval the ticket pairs")
NESTED = "IMP rounds are nested (each ticket is cut from the previous round's), so these are per-round values, not replicates"
MAGNITUDE_PREDICTION = ("if each ticket kept a weight with a probability that depends only on the weight's magnitude "
                        "rank in its own start (theta_k or theta0), independently of the other ticket given those "
                        "ranks: the kappa that predicts per layer (" + BINS_RULE + "); the binary-mask chain "
                        "kappa(A,M_A) kappa(M_A,M_B) kappa(M_B,B) is reported beside it (predicted_agreement_binary), "
                        "for comparison only: conditioning on top-k masks predicts too little agreement")


def _over_rounds(values: Sequence[float]) -> dict:
    v = [float(x) for x in values]
    return {"mean": float(np.mean(v)), "n": len(v), "per_round": v, "note": NESTED}


_ROUND_KEEP = ("effect", "ci", "ci_pairs", "p_value", "p_layers", "p", "pairs", "r", "layers_above",
               "observed_agreement", "predicted_agreement", "verdict")


def _claim(name: str, per_round: list[tuple[int, dict]], extra: dict) -> dict:
    """The last round's result as the claim, with every round's headline numbers as detail."""
    k, last = per_round[-1]
    head = ("effect", "ci", "p_value", "pairs")
    return {"effect": last["effect"], "ci": last["ci"], "ci_level": CI_LEVEL, "ci_rule": last["ci_rule"],
            "se": last["se"], "pairs": last["pairs"], "n_pairs": len(last["pairs"]), "unit": UNIT,
            "test": TEST[name], "p_value": last["p_value"], "round": k, "direction": "positive", "available": True,
            "verdict_rule": VERDICT_RULE,
            **{key: v for key, v in last.items() if key not in head + ("ci_rule", "se")}, **extra,
            "per_round": [{"round": kk, **{key: r[key] for key in _ROUND_KEEP if key in r}} for kk, r in per_round],
            "per_round_note": NESTED}


def _unavailable(name: str, k: int, extra: dict) -> dict:
    return {"effect": None, "ci": None, "ci_pairs": None, "ci_level": CI_LEVEL, "test": TEST[name], "p_value": None,
            "p_layers": None, "p": None, "n_pairs": 0, "n_layers": 0, "verdict": "inconclusive", "round": k,
            "direction": "positive", "available": False, "unit": UNIT, **extra}


def _mean_dicts(rows: Sequence[dict]) -> dict:
    """Key-wise mean of per-pair dicts of numbers."""
    return {key: float(np.mean([r[key] for r in rows])) for key in rows[0]}


def _per_round(df, values, kappas, pairs, metric, sizes, types, levels, fan_in, baseline, start_pair, predicted,
               resamples):
    """For each round: the per-round detail row and each claim's result (name -> [(round, result)])."""
    have_magnitude = baseline is not None and predicted is not None
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
                sp = None if start_pair is None else _layer_by_pair(start_pair, k, meta.index, pairs)
                pred = _layer_by_pair(predicted, k, meta.index, pairs)
                _, kwide = _wide(kappas[kappas["round"] == k], pairs)
                halves = halves_of(meta)
                strata = {x: f"{halves[x]}|{types[x]}" for x in meta.index}
                claims_by_round["beyond_magnitude"].append(
                    (k, claim_beyond_magnitude(kwide, own, sp, pred, types, strata, k, resamples)))
        matched = claim_resolution(wide, meta, types, levels, k, resamples, overlay)
        if matched is not None:
            claims_by_round["resolution_matched"].append((k, matched))
        if fan_in is not None:
            claims_by_round["fan_in"].append((k, claim_fan_in(wide, meta, types, fan_in, k, resamples)))
    return per_round, claims_by_round


def _layer_by_pair(rows: pd.DataFrame, k: int, layers, pairs) -> pd.DataFrame:
    """Rows (pair, round, layer, value) of round k as a layer x pair table."""
    r = rows[rows["round"] == k].assign(pair=lambda d: d["pair"].astype(str))
    return r.pivot(index="layer", columns="pair", values="value").reindex(index=layers, columns=pairs)


def _claims(claims_by_round: dict, last: int, baseline, predicted, baseline_source: str, fan_in) -> dict:
    """The four claims read at the last round, or why one is unavailable."""
    claims = {"upstream_vs_downstream": _claim("upstream_vs_downstream", claims_by_round["upstream_vs_downstream"],
                                               {"rule": SPLIT_RULE})}
    if claims_by_round["resolution_matched"]:
        claims["resolution_matched"] = _claim("resolution_matched", claims_by_round["resolution_matched"],
                                              {"pairing_rule": PAIRING_RULE})
    else:
        claims["resolution_matched"] = _unavailable("resolution_matched", last, {
            "pairing_rule": PAIRING_RULE, "levels": [],
            "reason": "no encoder block and its same-resolution decoder block both have prunable layers"})
    if baseline is not None and predicted is not None:
        claims["beyond_magnitude"] = _claim("beyond_magnitude", claims_by_round["beyond_magnitude"], {
            "baseline_source": baseline_source, "prediction_is": MAGNITUDE_PREDICTION,
            "verdict_is": "more / less: the two-way interval lies above / below 0 and the sign-flip test over "
                          "layers agrees (p < 0.05); inconclusive otherwise (never read as 'no more than')"})
    else:
        why = baseline_source or "no magnitude baseline was given"
        if baseline is not None:
            why = "no magnitude-rank prediction was given, so there is no prediction"
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
    return claims


def summarize(df: pd.DataFrame, metric: str = "kappa", sizes: Optional[Mapping[str, int]] = None,
              seeds: Sequence[int] = (), *, fan_in: Optional[Mapping[str, int]] = None,
              resolutions: Optional[Mapping[str, int]] = None, baseline: Optional[pd.DataFrame] = None,
              start_pair: Optional[pd.DataFrame] = None, predicted: Optional[pd.DataFrame] = None,
              baseline_source: str = "",
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
    round, layer, value) of kappa between the two starts' magnitude masks (the binary chain, for comparison);
    `predicted`: rows (pair, round, layer, value) of the kappa predicted under independence given each
    start's magnitude-rank bins (pipeline.similarity.magnitude). Without `baseline` and `predicted`
    (no shared start, `baseline_source` says why), the magnitude claim is unavailable."""
    df = _with_pairs(df, seeds)
    pairs = list(dict.fromkeys(df["pair"]))
    seeds = list(seeds) or list(dict.fromkeys(s for p in pairs for s in parse_pair(p)))
    values, kappas = chance_corrected(df, metric), chance_corrected(df, "kappa")
    types = {name: (layer_types or {}).get(name) or layer_type(name) for name in values["layer"].unique()}
    levels = resolution_pairs(values["block"].unique().tolist(), resolutions)
    per_round, claims_by_round = _per_round(df, values, kappas, pairs, metric, sizes, types, levels, fan_in,
                                            baseline, start_pair, predicted, resamples)
    claims = _claims(claims_by_round, per_round[-1]["round"], baseline, predicted, baseline_source, fan_in)
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
    return out
