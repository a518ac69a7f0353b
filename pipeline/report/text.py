"""Every sentence the report prints about a statistic: the frontier, the layerwise comparison, the dense
baseline's convergence, the similarity claims, and the rules behind their verdicts. pipeline/stats/ and
pipeline/similarity/ return numbers and statuses; this module words them (the verdicts themselves are
decided in pipeline/stats/verdicts.py).
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from pipeline.stats import verdicts as V

if TYPE_CHECKING:  # types only: the similarity stage words its claims here without the frontier code
    from pipeline.stats.convergence import Convergence, SeedsConvergence
    from pipeline.stats.frontier import Frontier, SeedsFrontier
    from pipeline.stats.ranking import ScheduleVerdict

PROVISIONAL = "provisional: dense baseline not converged"
CENSORED_PHRASE = "(last round studied, not bracketed)"
SUPERIORITY_RULE = "supported if the interval lies above 0, contradicted if below 0"


# -- formatting ----------------------------------------------------------------------------------
def pct(s: float) -> str:
    """A sparsity as a percentage; two decimals near 100 % so that 99.96 % never prints as 100.0 %."""
    p = 100 * s
    return f"{p:.2f} %" if p >= 99.5 else f"{p:.1f} %"


def _frac(f: float) -> str:
    return f"{100 * f:g} %"


def qualify(sentence: str, provisional: bool) -> str:
    return f"{PROVISIONAL}; {sentence}" if provisional else sentence


def _strip(sentence: str) -> str:
    prefix = f"{PROVISIONAL}; "
    return sentence[len(prefix):] if sentence.startswith(prefix) else sentence


# -- the sparsest non-inferior ticket (pipeline.stats.frontier) ----------------------------------
def _margin_words(f: Frontier) -> str:
    if f.ratio:
        return f"upper bound of the FID ratio ticket/dense < {math.exp(f.margin):.2f}"
    if f.margin_fraction is not None:
        return f"upper bound < margin {f.margin:.2f} = {_frac(f.margin_fraction)} of dense FID {f.dense_fid:.2f}"
    return f"upper bound < margin {f.margin:.2f} FID"


def _fail_words(f: Frontier) -> str:
    upper = f.stopped_upper
    if upper is None or not math.isfinite(float(upper)):
        return "no interval"
    if f.ratio:
        return f"upper bound of the FID ratio {math.exp(upper):.2f}× ≥ {math.exp(f.margin):.2f}×"
    tail = f" = {_frac(f.margin_fraction)} of dense FID {f.dense_fid:.2f}" if f.margin_fraction is not None else " FID"
    return f"upper bound {upper:.2f} ≥ margin {f.margin:.2f}{tail}"


def frontier_sentence(f: Frontier) -> str:
    """Where the fixed sequence puts the sparsest non-inferior ticket, qualified when provisional."""
    if f.censored:
        sentence = (f"sparsest non-inferior ticket ≥ {pct(f.last_prunable_sparsity)} {CENSORED_PHRASE}: "
                    f"round {f.last_round}, ≥ {pct(f.last_global_sparsity)} global; all {f.n_rounds} rounds pass "
                    f"({_margin_words(f)})")
    elif f.bracketed:
        interp = f" (interpolated ≈ {pct(f.crossing)})" if f.crossing is not None else ""
        sentence = (f"sparsest non-inferior ticket: round {f.round} at {pct(f.prunable_sparsity)} "
                    f"prunable ({pct(f.global_sparsity)} global); the crossing lies between "
                    f"{pct(f.bracket[0])} and {pct(f.bracket[1])} prunable{interp}; the fixed sequence "
                    f"stops at round {f.stopped_at} ({_fail_words(f)})")
    else:
        sentence = (f"no round is non-inferior: round {f.stopped_at} ({pct(f.stopped_prunable_sparsity)} prunable, "
                    f"{pct(f.stopped_global_sparsity)} global) already fails ({_fail_words(f)}); the "
                    f"crossing lies below {pct(f.stopped_prunable_sparsity)} prunable")
    ignored = f.ignored_after_stop
    if ignored:
        words = ", ".join(str(k) for k in ignored)
        sentence += (f"; round{'s' if len(ignored) > 1 else ''} {words} pass{'' if len(ignored) > 1 else 'es'} "
                     f"after the stop and do{'' if len(ignored) > 1 else 'es'} not count")
    return qualify(sentence, f.provisional)


def seeds_frontier_sentence(sf: SeedsFrontier) -> str:
    """Per-seed min / median / max of the frontier, censored and empty seeds, where each sequence stops;
    led by the over-seed frontier when there is one."""
    fs = [f for _, f in sf.per_seed]
    n = sf.n_seeds
    summary = (f"per seed: sparsest non-inferior ticket {pct(sf.sparsity_min)} / {pct(sf.sparsity_median)} / "
               f"{pct(sf.sparsity_max)} prunable (min / median / max over {n} seed{'s' if n != 1 else ''}; "
               f"global {pct(sf.global_sparsity_min)} / {pct(sf.global_sparsity_median)} / "
               f"{pct(sf.global_sparsity_max)})")
    if sf.n_censored:
        summary += (f"; {sf.n_censored} of {n} censored at the last round studied "
                    f"(≥ {pct(max(f.last_prunable_sparsity for f in fs if f.censored))}, not bracketed: a lower bound)")
    if sf.n_none:
        summary += f"; {sf.n_none} of {n} with no non-inferior round (counted as dense, 0 %)"
    stops = ", ".join(f"seed {s}: {'never (all pass)' if f.stopped_at is None else f'round {f.stopped_at}'}"
                      for s, f in sf.per_seed)
    summary += f"; the sequence stops at {stops}"
    pooled = sf.over_seeds
    head = f"over seeds ({'geometric-mean FID ratio' if pooled is not None and pooled.ratio else 'mean ΔFID'}): {_strip(frontier_sentence(pooled))}; " if pooled is not None else ""
    return qualify(head + summary, sf.provisional)


# -- the layerwise comparison on the frontier (pipeline.stats.ranking) ---------------------------
LAYERWISE_FRONTIER_RULE = (
    "on the frontier, paired by seed: d = sparsity(layerwise) − sparsity(uniform) of each one's sparsest "
    "non-inferior ticket, and r = log MACs(layerwise) − log MACs(uniform) of those tickets; "
    "t-intervals over seeds (exact sign-flip p beside). Supported if d's interval lies above 0 "
    "(sparser) or r's lies below 0 (cheaper at non-inferior FID); contradicted if d's lies below 0; "
    "else inconclusive. A censored sparsity is a lower bound, so: support needs no seed where uniform "
    "is censored (its frontier could be sparser and cheaper still), contradiction needs no seed where "
    "layerwise is censored, and when both are censored in every seed the comparison is inconclusive "
    "(both hit the ceiling)")


def layerwise_reason(v: ScheduleVerdict) -> str:
    """Why the layerwise verdict is what it is."""
    n, test, reference = v.n_paired, v.test, v.reference
    if v.why == V.FEW_SEEDS:
        return f"{n} paired seed{'s' if n != 1 else ''}: no interval over seeds"
    if v.why == V.CEILING:
        return (f"both hit the ceiling: in every seed both schedules' sparsest non-inferior ticket is the last round "
                f"studied (≥ {pct(v.ceiling)}, not bracketed), so neither can be shown sparser or cheaper; "
                f"study sparser rounds")
    if v.why == V.BETTER:
        how = ([f"{test} is sparser"] if v.sparser else []) + ([f"{test} is cheaper in MACs"] if v.cheaper else [])
        return " and ".join(how) + " at non-inferior FID"
    if v.why == V.WORSE:
        return f"{test}'s sparsest non-inferior ticket is less sparse than {reference}'s"
    if v.why == V.REFERENCE_CENSORED:
        return (f"{reference} is censored at the last round in {v.n_reference_censored} of {n} seeds, so its "
                f"frontier could be sparser and cheaper still")
    if v.why == V.TEST_CENSORED:
        return (f"{test} is censored at the last round in {v.n_test_censored} of {n} seeds, so its frontier "
                f"could be sparser still")
    bits = [("in every seed both schedules' sparsest non-inferior ticket is the same round (a tie at "
             "the resolution of the rounds: the crossings may still differ inside the bracket)") if v.tie
            else "the sparsity difference's interval includes 0"]
    if v.costlier:
        bits.append(f"{test} needs more MACs at its sparsest non-inferior ticket (×{v.macs_ratio:.2f}, "
                    f"interval above 1), so it is not cheaper either")
    elif not v.cheaper:
        bits.append("the MACs ratio's interval includes 1")
    return "; ".join(bits)


def layerwise_verdict_text(v: ScheduleVerdict) -> str:
    """The verdict as printed: qualified when the dense baselines have not converged."""
    return f"{v.outcome} ({PROVISIONAL})" if v.provisional else v.outcome


def layerwise_sentence(v: ScheduleVerdict) -> str:
    ok = math.isfinite
    dm, dlo, dhi = v.sparsity_diff, v.sparsity_diff_low, v.sparsity_diff_high
    pct_pts = f"{100 * dm:+.1f} pp" if ok(dm) else "n/a"
    ci = f" [{100 * dlo:+.1f}, {100 * dhi:+.1f}]" if ok(dlo) else ""
    mci = f" [{v.macs_ratio_low:.2f}, {v.macs_ratio_high:.2f}]" if ok(v.macs_ratio_low) else ""
    sentence = (f"{v.test} vs {v.reference} on the frontier: {v.outcome}: {layerwise_reason(v)}; sparsity difference "
                f"{pct_pts} prunable{ci} ({int(round(100 * v.level))} % t-interval over {v.n_paired} paired seeds, "
                f"exact sign-flip p = {v.sparsity_sign_flip_p:.3g}); MACs ratio ×{v.macs_ratio:.2f}{mci}")
    return qualify(sentence, v.provisional)


# -- the dense baseline (pipeline.stats.convergence) ---------------------------------------------
def convergence_sentence(c: Convergence) -> str:
    span = f"steps {c.step_from}–{c.step_to}"
    two = 100 * (2 * c.level - 1)
    measured = (f"improvement {c.improvement:.3g} = {100 * c.relative_improvement:.2f} % of the final loss "
                f"{c.final_loss:.4g} ({two:g} % interval [{c.low:.3g}, {c.high:.3g}]; one-sided {100 * c.level:g} % "
                f"upper bound {100 * c.relative_high:.2f} %, {c.n_items} paired items)")
    if c.converged:
        rose = "; the held-out loss rose over this span (not still improving; check for over-fitting)" if c.high < 0 else ""
        return (f"dense baseline converged: over {span} held-out {measured} < tolerance "
                f"{100 * c.tolerance:g} %{rose}")
    return f"dense baseline not converged: over {span} held-out {measured} ≥ tolerance {100 * c.tolerance:g} %"


def seeds_convergence_sentence(sc: SeedsConvergence) -> str:
    n = sc.n_seeds
    first = sc.per_seed[0][1]
    level, tolerance = first.level, first.tolerance
    if sc.converged:
        worst_seed, worst = max(sc.per_seed, key=lambda s_c: s_c[1].relative_high)
        return (f"dense baseline converged in all {n} seed{'s' if n != 1 else ''} (largest one-sided "
                f"{100 * level:g} % upper bound of the improvement over the last part: "
                f"{100 * worst.relative_high:.2f} % in seed {worst_seed}, tolerance {100 * tolerance:g} %)")
    bad = [f"seed {s}: improvement {100 * c.relative_improvement:.2f} % "
           f"(upper bound {100 * c.relative_high:.2f} %) over steps {c.step_from}–{c.step_to}"
           for s, c in sc.per_seed if not c.converged]
    return (f"dense baseline not converged in {n - sc.n_converged} of {n} seeds ({'; '.join(bad)}; "
            f"tolerance {100 * tolerance:g} %)")


# -- the similarity claims (pipeline.similarity.claims) ------------------------------------------
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
    return {"more": more, "less": less, "inconclusive": same}[_side(c)]


def _side(c: Mapping) -> str:
    """The claim's own verdict (pair- and layer-level evidence agreeing), else the side of its interval."""
    return c["verdict"] if c.get("verdict") in ("more", "less", "inconclusive") else V.side(c.get("ci"))


def magnitude_sentence(mag: Mapping) -> str:
    """The magnitude claim in words, following its interval: 'more than' / 'less than' their starting
    magnitudes predict, or inconclusive; never 'no more than'."""
    if not mag.get("available"):
        return f"no magnitude prediction: {mag.get('baseline_source', 'no baseline')}"
    numbers = (f"kappa {mag['observed_agreement']:.3f} observed vs {mag['predicted_agreement']:.3f} predicted if the "
               f"tickets were independent given their starts' magnitude ranks; observed minus predicted "
               f"{_est(mag)}; above the prediction in {mag['layers_above']} of {mag['layers']} layers; "
               f"{_p(mag, '(sign-flip over layers)')}")
    head = {"more": "the tickets agree more than their starting magnitudes predict",
            "less": "the tickets agree less than their starting magnitudes predict",
            "inconclusive": "whether the tickets agree more or less than their starting magnitudes predict is "
                            "inconclusive"}[_side(mag)]
    if mag.get("ci") is None:
        head += " (one pair of tickets: no interval)"
    return f"{head} ({numbers})"


def _who(n_pairs: int, seeds: Sequence) -> str:
    names = ", ".join(str(s) for s in seeds)
    if n_pairs > 1:
        rough = ", 2 df: very rough" if len(seeds) == 3 else ""
        return (f"Over the {n_pairs} pairs of tickets of seeds {names} (one theta0, the seeds vary the data order "
                f"only; intervals over ticket pairs and layers: delete-one-seed jackknife over the {len(seeds)} seeds "
                f"plus layers drawn within half x type{rough}; a verdict needs the layer permutation test to agree)")
    return (f"For the one pair of tickets of seeds {names} (one theta0, data order varied; 2 seeds give no "
            "seed-level interval)")


def _fan_in_part(fan: Mapping, metric: str) -> str:
    corr = (f"per-layer {metric} vs log fan-in: r = {fan['r']:+.2f} (mean over pairs; no p-value, the layers "
            "of one network are not independent draws)")
    if fan.get("available") is False:
        return f"{corr}, but {fan['reason']}"
    verb = _verb(fan, more="remains positive", less="is negative", same="is not distinguishable from 0",
                 none="is, for this one pair,")
    return (f"{corr}; with log fan-in partialled out the upstream-minus-downstream difference {verb} "
            f"({_est(fan)}; {_p(fan, 'within layer types')}; log fan-in itself tracks the split, "
            f"r = {fan['fan_in_vs_upstream_r']:+.2f})")


def similarity_paragraph(claims: Mapping[str, dict], metric: str, seeds: Sequence,
                         diffs: Sequence[float] = ()) -> str:
    """One paragraph computed from the claims' effects, intervals and p-values."""
    up = claims["upstream_vs_downstream"]
    rounds = ""
    if len(diffs) > 1:
        rounds = (f"; per round {', '.join(f'{d:+.3f}' for d in diffs)} "
                  "(nested rounds of the same tickets, not replicates)")
    without = up.get("without_skip") or {}
    skip = ""
    if without.get("layers_left_out"):
        skip = (f"; without the {len(without['layers_left_out'])} 1x1 skip convs {_est(without)}, "
                f"{_p(without, 'within layer types')}")
    parts = [f"{_who(up.get('n_pairs', 1), seeds)}, at round {up['round']}: upstream layers {_verb(up)} downstream "
             f"ones ({metric} upstream minus downstream {_est(up)}; {_p(up, 'within layer types')}{skip}{rounds})"]
    res = claims["resolution_matched"]
    if res.get("available", True):
        parts.append(f"at matched resolution, encoder blocks {_verb(res)} their decoder counterparts "
                     f"({_est(res)}; {_p(res, 'within level and layer type')}; mean over {len(res['levels'])} levels)")
    else:
        parts.append(f"no resolution-matched comparison: {res['reason']}")
    if claims.get("fan_in") is not None:
        parts.append(_fan_in_part(claims["fan_in"], metric))
    parts.append(magnitude_sentence(claims["beyond_magnitude"]))
    text = "; ".join(parts) + "."
    return text[0].upper() + text[1:]


def similarity_finding(summary: Mapping[str, Any], population_per_seed: str) -> str:
    """The similarity summary's 'finding': the paragraph, or why the claims were not tested (seeds with
    their own theta0; `population_per_seed` says so)."""
    if summary["population"]["theta0"] != "shared by every seed":
        return (f"Not tested: {population_per_seed}. The agreement of these pairs is in similarity.csv and the "
                "figures, as a description only.")
    return similarity_paragraph(summary["claims"], summary["metric"], summary["seeds"],
                                summary["difference"]["per_round"])


def magnitude_row_sentence(r: Mapping[str, Any]) -> str:
    """The findings row of the magnitude claim in words that follow its verdict: more / less than the
    starting magnitudes predict, or inconclusive (an interval containing 0 is never read as 'no more than')."""
    lo, hi = r["ci"]
    span = (f"95 % interval [{lo:+.3f}, {hi:+.3f}]" if math.isfinite(lo) and math.isfinite(hi)
            else "no interval")
    head = {V.SUPPORTED: "The tickets agree more than their starting magnitudes predict",
            V.CONTRADICTED: "The tickets agree less than their starting magnitudes predict"}.get(
        r["verdict"], "Whether the tickets agree more or less than their starting magnitudes predict is "
                      "inconclusive at this scale")
    also = f"; {r['also']}" if r.get("also") else ""
    return (f"{head} (observed minus predicted κ {r['effect']:+.3f}, {span}; read at {r['read_at']}{also}). "
            "The prediction is the agreement two tickets would have if each kept a weight with a probability "
            "set by its magnitude rank in its own start (rank bins per layer), independently of the other.")
