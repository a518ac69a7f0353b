"""Intervals and verdicts for similarity claims over ticket pairs AND layers (crossed).

A claim such as "upstream layers agree more than downstream ones" generalises over ticket pairs and
over layers: another network of this kind has other layers of each type in each half. Every claim
here is a linear functional of the per-pair, per-layer agreement y[l, p]: effect_p = sum_l c_l y[l, p]
(half means, level means, a mean excess, or a partial-regression coefficient with x fixed), so its
sampling variance splits into

- the pair part: the delete-one-seed jackknife of the U-statistic over pairs of seeds (pairs share
  seeds; deleting a seed drops all its pairs), SE_pairs;
- the layer part: layers as random draws within their strata (half x layer type, or level x side x
  type for the resolution claim), y_l = mu_stratum + b_l with var(b_l) = sigma^2_stratum, so
  var = sum_l c_l^2 sigma^2_h(l) with sigma^2_h the within-stratum variance of the pair-averaged
  values (n_h - 1 denominator; a stratum of one layer takes the pooled within-stratum variance).

SE^2 = SE_pairs^2 + SE_layers^2 counts the pair x layer residual in both parts (conservative), and the
interval is Student-t with n_seeds - 1 df (the design rule: with few seeds, n - 1 df covers where a
Satterthwaite df does not), or fewer when the layers leave fewer within-stratum df.

VERDICT_RULE: a side ("more" / "less") needs the pair-level and the layer-level evidence to agree:
the two-way interval excludes 0 AND the layer-level permutation test (within strata) has p < 0.05.
The p it reports for multiplicity is the intersection-union p = max(p_two_way, p_layers), so
p < 0.05 exactly when the verdict is a side.
"""
from __future__ import annotations

import math
from typing import Mapping, Optional, Sequence

import numpy as np
from scipy import stats

ALPHA = 0.05
VERDICT_RULE = ("a side (more / less) needs both: the two-way interval (ticket pairs and layers) excludes 0 AND "
                "the layer permutation test within strata has p < 0.05; p = max(p_two_way, p_layers) "
                "(intersection-union), which is < 0.05 exactly when the verdict is a side; otherwise inconclusive")
INTERVAL_RULE = ("two-way 95 % interval: SE^2 = SE_pairs^2 (delete-one-seed jackknife of the pair U-statistic) + "
                 "SE_layers^2 (layers as random draws within strata: sum_l c_l^2 s^2_stratum, a one-layer "
                 "stratum taking the pooled within-stratum variance); Student-t, n_seeds - 1 df")


# -- array cores (vectorised over leading axes; the calibration test runs them on many trials) ----------
def jackknife_pairs_se(pair_matrix: np.ndarray) -> np.ndarray:
    """Delete-one-seed jackknife SE of the mean over all unordered pairs i < j of n seeds.
    pair_matrix: (..., n, n), symmetric, its upper triangle the pair values (diagonal ignored)."""
    v = np.asarray(pair_matrix, float)
    n = v.shape[-1]
    if n < 3:
        raise ValueError(f"the seed jackknife needs at least 3 seeds, got {n}")
    v = v * (1 - np.eye(n))
    total = v.sum(axis=(-2, -1)) / 2
    rows = v.sum(axis=-1)  # each seed's pairs
    loo = (total[..., None] - rows) / ((n - 1) * (n - 2) / 2)
    dev = loo - loo.mean(axis=-1, keepdims=True)
    return np.sqrt((n - 1) / n * (dev ** 2).sum(axis=-1))


def layer_variance(values: np.ndarray, coef: np.ndarray, strata: Sequence) -> tuple[np.ndarray, int]:
    """sum_l c_l^2 s^2_stratum(l) over the last axis of `values` (pair-averaged per-layer values), and the
    within-stratum df behind it. A stratum of one layer has no variance of its own and takes the pooled
    within-stratum variance; with no stratum of two layers the variance is NaN."""
    y = np.asarray(values, float)
    c = np.asarray(coef, float)
    labels, idx = np.unique(np.asarray([str(s) for s in strata]), return_inverse=True)
    var_h = np.full(y.shape[:-1] + (len(labels),), np.nan)
    size = np.bincount(idx, minlength=len(labels))
    ss, df = np.zeros(y.shape[:-1]), 0
    for h in range(len(labels)):
        if size[h] < 2:
            continue
        part = y[..., idx == h]
        dev2 = ((part - part.mean(axis=-1, keepdims=True)) ** 2).sum(axis=-1)
        var_h[..., h] = dev2 / (size[h] - 1)
        ss, df = ss + dev2, df + int(size[h] - 1)
    pooled = ss / df if df > 0 else np.full(y.shape[:-1], np.nan)
    var_h = np.where(np.isnan(var_h), pooled[..., None], var_h)
    return (c ** 2 * var_h[..., idx]).sum(axis=-1), df


def two_way_from_arrays(effect, se_pairs, var_layers, n_seeds: int, df_layers: int, level: float = 0.95) -> dict:
    """Effect +/- t * sqrt(se_pairs^2 + var_layers) with min(n_seeds - 1, df_layers) df, and its two-sided p
    (arrays broadcast)."""
    df = max(1, min(n_seeds - 1, df_layers if df_layers > 0 else n_seeds - 1))
    se = np.sqrt(np.asarray(se_pairs, float) ** 2 + np.asarray(var_layers, float))
    q = stats.t.ppf(0.5 + level / 2, df)
    effect = np.asarray(effect, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(se > 0, 2 * stats.t.sf(np.abs(effect) / np.where(se > 0, se, 1.0), df),
                     np.where(effect == 0, 1.0, 0.0))
    return {"low": effect - q * se, "high": effect + q * se, "se": se, "p": p, "df": df}


# -- one claim ----------------------------------------------------------------------------------------
def pair_matrix(values: Mapping[tuple, float], seeds: Sequence) -> np.ndarray:
    index = {s: i for i, s in enumerate(seeds)}
    m = np.zeros((len(seeds), len(seeds)))
    for (a, b), v in values.items():
        m[index[a], index[b]] = m[index[b], index[a]] = float(v)
    return m


def verdict(ci: Optional[Sequence[float]], p_two_way: Optional[float], p_layers: Optional[float],
            alpha: float = ALPHA) -> tuple[str, Optional[float]]:
    """(verdict, p) by VERDICT_RULE: 'more' / 'less' only when the two-way interval excludes 0 and the
    layer-level p is below alpha; p = max(p_two_way, p_layers) (None when either is missing)."""
    ok = lambda v: isinstance(v, (int, float)) and math.isfinite(v)
    if ci is None or not (ok(p_two_way) and ok(p_layers)) or not (ok(ci[0]) and ok(ci[1])):
        return "inconclusive", None
    p = max(float(p_two_way), float(p_layers))
    if p >= alpha:
        return "inconclusive", p
    return ("more" if ci[0] > 0 else "less" if ci[1] < 0 else "inconclusive"), p


def crossed(pair_values: Mapping[tuple, float], seeds: Sequence, layer_means: np.ndarray, coef: np.ndarray,
            strata: Sequence, p_layers: Optional[float], level: float = 0.95) -> dict:
    """The two-way interval, its p and the verdict for one claim: `pair_values` {(a, b): c . y_p},
    `layer_means` the pair-averaged per-layer values the coefficients `coef` weigh, `strata` their
    layer-sampling strata, `p_layers` the layer-level permutation p. Fewer than 3 seeds: no interval."""
    out = {"ci": None, "se_two_way": None, "se_pairs": None, "se_layers": None, "df": None, "p_two_way": None,
           "p_layers": p_layers, "p": None, "verdict": "inconclusive", "n_layers": int(len(coef)),
           "ci_two_way_rule": INTERVAL_RULE, "verdict_rule": VERDICT_RULE}
    seeds = list(seeds)
    if len(seeds) < 3 or not all(math.isfinite(float(v)) for v in pair_values.values()):
        return out
    m = pair_matrix(pair_values, seeds)
    effect = float(np.mean(list(pair_values.values())))
    se_p = float(jackknife_pairs_se(m))
    var_l, df_l = layer_variance(layer_means, coef, strata)
    var_l = float(var_l)
    if not math.isfinite(var_l):
        var_l = 0.0  # no stratum with two layers: the layer part cannot be estimated (said in the rule)
        out["ci_two_way_rule"] = INTERVAL_RULE + "; here no stratum has two layers, so the layer part is missing"
    r = two_way_from_arrays(effect, se_p, var_l, len(seeds), df_l, level)
    ci = [float(r["low"]), float(r["high"])]
    v, p = verdict(ci, float(r["p"]), p_layers)
    return {**out, "ci": ci, "se_two_way": float(r["se"]), "se_pairs": se_p, "se_layers": math.sqrt(var_l),
            "df": int(r["df"]), "p_two_way": float(r["p"]), "p": p, "verdict": v}
