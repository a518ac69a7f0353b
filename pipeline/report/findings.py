"""The findings table: one row per claim of the paper, each with effect, interval, test and verdict,
all computed here from the metrics files and the similarity summary (verdict rules: pipeline.report.verdicts)."""
from __future__ import annotations

import math
from typing import Any, Optional

import pandas as pd

from pipeline.report import frontier as FR
from pipeline.report.render import Table, fmt
from pipeline.report.tables import interval
from pipeline.report.verdicts import CONTRADICTED, INCONCLUSIVE, SUPERIORITY_RULE, SUPPORTED, superiority

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
    passed = o.round is not None and o.round >= k
    if passed:
        verdict = SUPPORTED
    elif est.low > margin:
        verdict = CONTRADICTED
    else:
        verdict = INCONCLUSIVE
    seeds = list(params.imp.seeds)
    loss = FR.loss_difference(runs, ("ticket", k), ("dense", 0), seeds, params.report.level)
    glob = FR.global_sparsity(df, "ticket", None, k)
    also = "; ".join([f"ΔFID {FR.estimate_text(est)}", f"Δ held-out loss {FR.estimate_text(loss, '+.5f')}",
                      f"frontier: {o.sentence}"] + ([est.small_n] if est.small_n else []))
    return finding(TICKET_CLAIM, f"round {k} ({100 * sparse[k]:.1f} % prunable, {100 * glob:.1f} % of all weights), "
                   f"{est.n} seeds", _qualified(verdict, fr), est.estimate, est.ci,
                   f"ΔFID ticket − dense; {est.rule}; fixed-sequence non-inferiority, margin {margin:.2f} = "
                   f"report.margin {params.report.margin:g} × mean dense FID: supported if every round up to this "
                   f"one has its interval's upper end below the margin, contradicted if this round's lower end is "
                   f"above it; population: {FR.POPULATION}", also)


def ticket_vs_control(params, df: pd.DataFrame, runs: dict, kind: str, k: int,
                      fr: Optional[FR.FrontierResult]) -> dict[str, Any]:
    """FID(control) − FID(ticket) at round k, paired by seed and shared samples; > 0 supports the ticket."""
    claim = f"the ticket beats the {kind} control"
    seeds = sorted(set(df.loc[(df["kind"] == kind) & (df["round"] == k), "seed"]) &
                   set(df.loc[(df["kind"] == "ticket") & (df["round"] == k), "seed"]))
    if not seeds:
        return finding(claim, f"round {k}", NOT_MEASURED, test=f"no ticket and {kind} control both evaluated at round {k}")
    est = FR.fid_difference(df, runs, (kind, k), ("ticket", k), seeds, params.report.level)
    loss = FR.loss_difference(runs, (kind, k), ("ticket", k), seeds, params.report.level)
    sp = df.loc[(df["kind"] == kind) & (df["round"] == k), "sparsity"].mean()
    glob = FR.global_sparsity(df, kind, None, k)
    also = "; ".join([f"FID {FR.estimate_text(est)}", f"held-out loss control − ticket {FR.estimate_text(loss, '+.5f')}"]
                     + ([est.small_n] if est.small_n else []))
    verdict = superiority(est.ci)
    return finding(claim, f"round {k} ({100 * sp:.1f} % prunable, {100 * glob:.1f} % of all weights), {est.n} seeds",
                   _qualified(verdict, fr) if fr is not None else verdict, est.estimate, est.ci,
                   f"FID {kind} − ticket; {est.rule}; {SUPERIORITY_RULE}; population: {FR.POPULATION}", also)


def similarity_findings(summary: Optional[dict[str, Any]], metric: str) -> list[dict[str, Any]]:
    """Rows from similarity summary.json 'claims' (effect, ci, test, p_value, round, direction)."""
    claims = (summary or {}).get("claims")
    if isinstance(claims, list):  # tolerate a list of named claims as well as a dict keyed by name
        claims = {str(c.get("name") or c.get("claim")): c for c in claims if isinstance(c, dict)}
    if not isinstance(claims, dict):
        why = "artifacts/similarity/summary.json not found" if summary is None else "similarity summary has no 'claims'"
        return [finding(SIM_CLAIMS["upstream_vs_downstream"], "–", NOT_MEASURED, test=why)]
    rows = []
    for key, claim in SIM_CLAIMS.items():
        c = claims.get(key)
        if not isinstance(c, dict):
            continue
        try:
            ci = (float(c["ci"][0]), float(c["ci"][1]))
            effect = float(c["effect"])
        except (KeyError, TypeError, ValueError, IndexError):
            rows.append(finding(claim, "–", NOT_MEASURED, test=f"claim '{key}' lacks effect/ci"))
            continue
        direction = str(c.get("direction", "positive"))
        p = c.get("p_value")
        also = f"p = {p:.3g}" if isinstance(p, (int, float)) else ""
        if key == "beyond_magnitude":
            extra = [f"{n} {float(c[n]):.3f}" for n in ("ticket_agreement", "baseline_agreement")
                     if isinstance(c.get(n), (int, float))]
            also = "; ".join([also] + extra) if also else "; ".join(extra)
        if key == "fan_in" and isinstance(c.get("r"), (int, float)):
            also = f"r(agreement, log fan-in) = {c['r']:+.2f}" + (f"; {also}" if also else "")
        rows.append(finding(claim, f"round {c.get('round', '?')}", superiority(ci, direction), effect, ci,
                            f"{metric}: {c.get('test', '?')}; {SUPERIORITY_RULE}"
                            + (" (claim predicts < 0)" if direction == "negative" else ""), also))
    return rows


def beyond_magnitude_sentence(rows: list[dict[str, Any]]) -> Optional[str]:
    """What the magnitude baseline says, in words (the report must say so when it explains the agreement)."""
    for r in rows:
        if r["claim"] == SIM_CLAIMS["beyond_magnitude"] and r["verdict"] != NOT_MEASURED:
            lo, hi = r["ci"]
            if r["verdict"] == "supported":
                return (f"The two tickets agree more with each other than each agrees with the magnitude mask of its "
                        f"own rewind point (difference {r['effect']:+.3f}, 95 % interval [{lo:.3f}, {hi:.3f}]).")
            return (f"The two tickets agree no more with each other than each agrees with the magnitude mask of its "
                    f"own rewind point (difference {r['effect']:+.3f}, 95 % interval [{lo:.3f}, {hi:.3f}]): their "
                    "agreement can be explained by the magnitudes they start from.")
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
