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
    """Rows from similarity summary.json 'claims' (effect over ticket pairs, ci, test, p_value, round,
    direction, pairs), each saying its population: how many ticket pairs, of one θ0, data order only."""
    claims = (summary or {}).get("claims")
    if isinstance(claims, list):  # tolerate a list of named claims as well as a dict keyed by name
        claims = {str(c.get("name") or c.get("claim")): c for c in claims if isinstance(c, dict)}
    if not isinstance(claims, dict):
        why = "artifacts/similarity/summary.json not found" if summary is None else "similarity summary has no 'claims'"
        return [finding(SIM_CLAIMS["upstream_vs_downstream"], "–", NOT_MEASURED, test=why)]
    population = summary.get("population") if isinstance(summary.get("population"), dict) else {}
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
    """What the magnitude claim says, in words that follow its verdict: more / less than the starting
    magnitudes predict, or inconclusive (an interval containing 0 is never read as 'no more than')."""
    from pipeline.report.verdicts import CONTRADICTED, SUPPORTED

    for r in rows:
        if r["claim"] == SIM_CLAIMS["beyond_magnitude"] and r["verdict"] != NOT_MEASURED:
            lo, hi = r["ci"]
            span = (f"95 % interval [{lo:+.3f}, {hi:+.3f}]" if math.isfinite(lo) and math.isfinite(hi)
                    else "no interval")
            head = {SUPPORTED: "The tickets agree more than their starting magnitudes predict",
                    CONTRADICTED: "The tickets agree less than their starting magnitudes predict"}.get(
                r["verdict"], "Whether the tickets agree more or less than their starting magnitudes predict is "
                              "inconclusive at this scale")
            also = f"; {r['also']}" if r.get("also") else ""
            return (f"{head} (observed minus predicted κ {r['effect']:+.3f}, {span}; read at {r['read_at']}{also}). "
                    "The prediction is the agreement two tickets would have if each were the magnitude mask of its "
                    "own start plus independent changes: κ(A, M_A)·κ(M_A, M_B)·κ(M_B, B) per layer.")
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
