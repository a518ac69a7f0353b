"""The findings table: one row per claim of the paper, each with effect, interval, test and verdict,
all computed here from the metrics files and the similarity summary (verdict rules: pipeline.report.verdicts)."""
from __future__ import annotations

import math
from typing import Any, Optional

import pandas as pd

from pipeline.report.verdicts import (NONINFERIORITY_RULE, SUPERIORITY_RULE, Estimate, noninferiority, paired_difference_ci,
                        superiority)
from pipeline.report.render import Table, fmt
from pipeline.report.tables import fid_inf_std, interval

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


def _paired(a: pd.DataFrame, b: pd.DataFrame, col: str, std: Any) -> Estimate:
    """Paired over the seeds both frames have: mean of a[col] − b[col] with verdicts' interval rule."""
    a, b = a.set_index("seed"), b.set_index("seed")
    seeds = sorted(set(a.index) & set(b.index))
    sa = std(a) if callable(std) else a[std]
    sb = std(b) if callable(std) else b[std]
    return paired_difference_ci([a.loc[s, col] for s in seeds], [sa.loc[s] for s in seeds],
                                [b.loc[s, col] for s in seeds], [sb.loc[s] for s in seeds])


def _delta(label: str, e: Estimate, spec: str) -> str:
    return f"{label} {fmt(e.mean, '+' + spec)} {interval(e.low, e.high, spec)}"


def ticket_vs_dense(df: pd.DataFrame, margin: float) -> dict[str, Any]:
    """ΔFID = ticket − dense at the sparsest round with mean sparsity >= 90 %, non-inferiority vs `margin`."""
    tickets = df[df["kind"] == "ticket"]
    dense = df[df["kind"] == "dense"]
    by_round = tickets.groupby("round")["sparsity"].mean()
    sparse = by_round[by_round >= SPARSE_ENOUGH]
    if sparse.empty:
        most = f"{100 * by_round.max():.1f} % at round {int(by_round.idxmax())}" if len(by_round) else "no pruned round"
        return finding(TICKET_CLAIM, "–", NOT_MEASURED,
                       test=f"no round reaches {100 * SPARSE_ENOUGH:g} % sparsity (sparsest: {most})")
    k = int(sparse.idxmax())
    t = tickets[tickets["round"] == k]
    est = _paired(t, dense, "fid", "fid_std")
    inf = _paired(t, dense, "fid_inf", fid_inf_std)
    loss = _paired(t, dense, "heldout_loss", "heldout_loss_se")
    also = "; ".join([_delta("ΔFID∞", inf, ".2f"), _delta("Δ held-out loss", loss, ".5f")])
    return finding(TICKET_CLAIM, f"round {k} ({100 * sparse[k]:.1f} % sparse), {est.n} seed(s)",
                   noninferiority(est.ci, margin), est.mean, est.ci,
                   f"ΔFID ticket − dense; {est.rule}; {NONINFERIORITY_RULE.format(margin=margin)} "
                   "(report.fid_tolerance)", also)


def ticket_vs_control(df: pd.DataFrame, kind: str) -> dict[str, Any]:
    """FID(control) − FID(ticket) at the control's sparsest round; positive supports the ticket."""
    ctrl = df[df["kind"] == kind]
    k = int(ctrl.loc[ctrl["sparsity"].idxmax(), "round"])
    c, t = ctrl[ctrl["round"] == k], df[(df["kind"] == "ticket") & (df["round"] == k)]
    claim = f"the ticket beats the {kind} control"
    if t.empty:
        return finding(claim, f"round {k}", NOT_MEASURED, test=f"no ticket evaluated at round {k}")
    est = _paired(c, t, "fid", "fid_std")
    inf = _paired(c, t, "fid_inf", fid_inf_std)
    loss = _paired(c, t, "heldout_loss", "heldout_loss_se")
    also = "; ".join([_delta("FID∞ control − ticket", inf, ".2f"), _delta("held-out loss control − ticket", loss, ".5f")])
    return finding(claim, f"round {k} ({100 * c['sparsity'].mean():.1f} % sparse), {est.n} seed(s)",
                   superiority(est.ci), est.mean, est.ci,
                   f"FID {kind} − ticket; {est.rule}; {SUPERIORITY_RULE}", also)


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


def collect(df: pd.DataFrame, margin: float, sim_summary: Optional[dict[str, Any]], metric: str) -> list[dict[str, Any]]:
    """Every claim's row, in the table's order: ticket vs dense, ticket vs each control, similarity."""
    rows = [ticket_vs_dense(df, margin)]
    rows += [ticket_vs_control(df, kind) for kind in sorted(set(df.loc[~df["main"], "kind"]))]
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
