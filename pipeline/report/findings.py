"""The findings table: one row per claim of the paper, each with effect, interval, test and verdict,
all computed here from the metrics files and the similarity summary (verdicts decided by
pipeline.stats.verdicts, worded by pipeline.report.text)."""
from __future__ import annotations

import math
from typing import Any, Optional

import pandas as pd

from pipeline.report import frontier as FR
from pipeline.report.fid_intervals import fid_difference
from pipeline.report.render import Table, fmt
from pipeline.report.tables import interval
from pipeline.report.text import SUPERIORITY_RULE, frontier_sentence, magnitude_row_sentence
from pipeline.stats.verdicts import sequence_verdict, superiority

NOT_MEASURED = "not measured"
SPARSE_ENOUGH = 0.9  # the paper's claim is about tickets at >= 90 % sparsity
TICKET_CLAIM = "winning tickets exist at ≥ 90 % sparsity (ticket vs dense)"
SIM_CLAIMS = {  # key in similarity summary.json 'claims' -> the claim as the table states it
    "upstream_vs_downstream": "upstream blocks agree more than downstream blocks (forward order)",
    "resolution_matched": "encoder blocks agree more than decoder blocks at the same resolution",
    "beyond_magnitude": "the two tickets agree beyond what each shares with its starting magnitudes",
    "fan_in": "upstream agree more than downstream after partialling out log fan-in",
}
HEADER = ["claim", "read at", "effect", "95 % interval", "test", "verdict", "also measured"]


def finding(claim: str, read_at: str, verdict: str, effect: float = math.nan,
            ci: tuple[float, float] = (math.nan, math.nan), test: str = "", also: str = "") -> dict[str, Any]:
    return {"claim": claim, "read_at": read_at, "effect": effect, "ci": [ci[0], ci[1]], "test": test,
            "verdict": verdict, "also": also}


def _qualified(verdict: str, fr: FR.FrontierResult) -> str:
    """A ticket verdict against a baseline that has not converged is provisional, and says so."""
    conv = fr.converged
    if conv is not None and conv.converged:
        return verdict
    why = "dense baseline not converged" if conv is not None else "dense convergence not measured"
    return f"{verdict} (provisional: {why})"


def ticket_vs_dense(params, df: pd.DataFrame, runs: dict, fr: Optional[FR.FrontierResult]) -> dict[str, Any]:
    """The claim is read at the first round with mean sparsity >= 90 %, inside the fixed sequence of
    non-inferiority tests: supported only if every round up to it passes (margin: report.margin of
    the dense FID); contradicted if that round's interval lies wholly beyond the margin."""
    tickets = df[df["kind"] == "ticket"]
    by_round = tickets.groupby("round")["sparsity"].mean()
    sparse = by_round[by_round >= SPARSE_ENOUGH]
    if sparse.empty or fr is None:
        most = f"{100 * by_round.max():.1f} % at round {int(by_round.idxmax())}" if len(by_round) else "no pruned round"
        return finding(TICKET_CLAIM, "–", NOT_MEASURED,
                       test=f"no round reaches {100 * SPARSE_ENOUGH:g} % sparsity (sparsest: {most})")
    k = int(sparse.index.min())
    est = fr.deltas[k]
    o = fr.over_seeds
    margin = o.margin
    verdict = sequence_verdict(o.round is not None and o.round >= k, est.low, margin)
    seeds = list(params.imp.seeds)
    loss = FR.loss_difference(runs, ("ticket", k), ("dense", 0), seeds, params.report.level)
    glob = FR.global_sparsity(df, "ticket", None, k)
    also = "; ".join([f"ΔFID {FR.estimate_text(est)}", f"Δ held-out loss {FR.estimate_text(loss, '+.5f')}",
                      f"frontier: {frontier_sentence(o)}"] + ([est.small_n] if est.small_n else []))
    return finding(TICKET_CLAIM, f"round {k} ({100 * sparse[k]:.1f} % prunable, {100 * glob:.1f} % of all weights), "
                   f"{est.n} seeds", _qualified(verdict, fr), est.estimate, est.ci,
                   f"ΔFID ticket − dense; {est.rule}; fixed-sequence non-inferiority, margin {margin:.2f} = "
                   f"report.margin {params.report.margin:g} × mean dense FID: supported if every round up to this "
                   f"one has its interval's upper end below the margin, contradicted if this round's lower end is "
                   f"above it; population: {params.population()}", also)


def ticket_vs_control(params, df: pd.DataFrame, runs: dict, kind: str, k: int,
                      fr: Optional[FR.FrontierResult]) -> dict[str, Any]:
    """FID(control) − FID(ticket) at round k, paired by seed and shared samples; > 0 supports the ticket."""
    claim = f"the ticket beats the {kind} control"
    seeds = sorted(set(df.loc[(df["kind"] == kind) & (df["round"] == k), "seed"]) &
                   set(df.loc[(df["kind"] == "ticket") & (df["round"] == k), "seed"]))
    if not seeds:
        return finding(claim, f"round {k}", NOT_MEASURED, test=f"no ticket and {kind} control both evaluated at round {k}")
    est = fid_difference(df, runs, (kind, k), ("ticket", k), seeds, params.report.level)
    loss = FR.loss_difference(runs, (kind, k), ("ticket", k), seeds, params.report.level)
    sp = df.loc[(df["kind"] == kind) & (df["round"] == k), "sparsity"].mean()
    glob = FR.global_sparsity(df, kind, None, k)
    also = "; ".join([f"FID {FR.estimate_text(est)}", f"held-out loss control − ticket {FR.estimate_text(loss, '+.5f')}"]
                     + ([est.small_n] if est.small_n else []))
    verdict = superiority(est.ci)
    return finding(claim, f"round {k} ({100 * sp:.1f} % prunable, {100 * glob:.1f} % of all weights), {est.n} seeds",
                   _qualified(verdict, fr) if fr is not None else verdict, est.estimate, est.ci,
                   f"FID {kind} − ticket; {est.rule}; {SUPERIORITY_RULE}; population: {params.population()}", also)


def similarity_findings(summary: Optional[dict[str, Any]], metric: str) -> list[dict[str, Any]]:
    """Rows from similarity summary.json 'claims' (effect over ticket pairs, ci, test, p_value, round,
    direction, pairs), each saying its population: how many ticket pairs, of one θ0, data order only."""
    claims = (summary or {}).get("claims")
    if isinstance(claims, list):  # tolerate a list of named claims as well as a dict keyed by name
        claims = {str(c.get("name") or c.get("claim")): c for c in claims if isinstance(c, dict)}
    if not isinstance(claims, dict):
        why = "artifacts/similarity/summary.json not found" if summary is None else "similarity summary has no 'claims'"
        return [finding(SIM_CLAIMS["upstream_vs_downstream"], "–", NOT_MEASURED, test=why)]
    population = summary.get("population") if isinstance(summary.get("population"), dict) else {}
    if population.get("theta0") == "per seed":
        return [finding(SIM_CLAIMS[key], "–", NOT_MEASURED,
                        test=f"not tested: {population.get('is', 'each seed has its own theta0')}; rerun with model.theta0 = shared")
                for key in SIM_CLAIMS]
    n_pairs, seeds = population.get("n_pairs", summary.get("n_pairs")), population.get("seeds", summary.get("seeds"))
    who = ""
    if isinstance(n_pairs, int):
        of = f" of seeds {', '.join(str(s) for s in seeds)}" if seeds else ""
        who = (f"; {n_pairs} ticket pair{'s' if n_pairs != 1 else ''}{of} (one θ0, seeds vary the data order only"
               + ("; no seed-level interval with one pair" if n_pairs == 1 else "") + ")")

    def num(v: Any) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

    def per_pair(c: dict) -> str:
        pairs = c.get("pairs")
        if not isinstance(pairs, dict) or len(pairs) < 2:
            return ""
        return "per pair " + ", ".join(f"{k} {float(v):+.3f}" for k, v in pairs.items() if num(v))

    rows = []
    for key, claim in SIM_CLAIMS.items():
        c = claims.get(key)
        if not isinstance(c, dict):
            continue
        try:
            effect = float(c["effect"])
            ci = (math.nan, math.nan) if c.get("ci") is None else (float(c["ci"][0]), float(c["ci"][1]))
        except (KeyError, TypeError, ValueError, IndexError):
            rows.append(finding(claim, "–", NOT_MEASURED, test=f"claim '{key}' lacks effect/ci"))
            continue
        direction = str(c.get("direction", "positive"))
        p = c.get("p_value")
        also = [per_pair(c)]
        if num(p):
            where = {"beyond_magnitude": "sign-flip over layers"}.get(key, "permutation within layer types")
            also.append(f"p = {p:.3g} ({where})" if "pairs" in c else f"p = {p:.3g}")
        if key == "upstream_vs_downstream" and isinstance(c.get("without_skip"), dict):
            w = c["without_skip"]
            if num(w.get("effect")) and w.get("layers_left_out"):
                ci_w = w.get("ci")
                span = f" [{ci_w[0]:+.3f}, {ci_w[1]:+.3f}]" if isinstance(ci_w, list) else ""
                also.append(f"without the {len(w['layers_left_out'])} 1×1 skip convs {w['effect']:+.3f}{span}"
                            + (f" ({per_pair(w)})" if per_pair(w) else ""))
        if key == "beyond_magnitude":
            if num(c.get("observed_agreement")) and num(c.get("predicted_agreement")):
                also.append(f"observed κ {c['observed_agreement']:.3f} vs predicted {c['predicted_agreement']:.3f}")
            if num(c.get("layers_above")) and num(c.get("layers")):
                also.append(f"above the prediction in {int(c['layers_above'])} of {int(c['layers'])} layers")
        if key == "fan_in" and num(c.get("r")):
            also.insert(0, f"r(agreement, log fan-in) = {c['r']:+.2f}"
                        + (" (mean over pairs, no p-value: layers are not independent)" if "pairs" in c else ""))
        rule = f"; {c['ci_rule']}" if c.get("ci_rule") else ""
        rows.append(finding(claim, f"round {c.get('round', '?')}{who}", superiority(ci, direction), effect, ci,
                            f"{c.get('metric', metric)}: {c.get('test', '?')}{rule}; {SUPERIORITY_RULE}"
                            + (" (claim predicts < 0)" if direction == "negative" else ""),
                            "; ".join(a for a in also if a)))
    return rows


def beyond_magnitude_sentence(rows: list[dict[str, Any]]) -> Optional[str]:
    """The magnitude claim's row in words (pipeline.report.text), if it was measured."""
    for r in rows:
        if r["claim"] == SIM_CLAIMS["beyond_magnitude"] and r["verdict"] != NOT_MEASURED:
            return magnitude_row_sentence(r)
    return None


def collect(params, df: pd.DataFrame, runs: dict, fr: Optional[FR.FrontierResult],
            sim_summary: Optional[dict[str, Any]], metric: str) -> list[dict[str, Any]]:
    """Every claim's row, in the table's order: ticket vs dense, ticket vs each control at each of its
    rounds, similarity."""
    rows = [ticket_vs_dense(params, df, runs, fr)]
    controls = df.loc[~df["main"], ["kind", "round"]].drop_duplicates().sort_values(["kind", "round"])
    rows += [ticket_vs_control(params, df, runs, str(kind), int(k), fr) for kind, k in controls.itertuples(index=False)]
    rows += similarity_findings(sim_summary, metric)
    return rows


def findings_table(rows: list[dict[str, Any]]) -> Table:
    body = []
    for r in rows:
        lo, hi = r["ci"]
        body.append([r["claim"], r["read_at"], fmt(r["effect"], "+.3f"), interval(lo, hi, ".3f"), r["test"],
                     r["verdict"], r["also"] or "–"])
    return Table(list(HEADER), body)


def json_ready(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Findings for reports/metrics.json: NaN becomes None so the file stays valid JSON."""
    clean = lambda v: None if isinstance(v, float) and math.isnan(v) else v
    return [{k: ([clean(x) for x in v] if k == "ci" else clean(v)) for k, v in r.items()} for r in rows]
