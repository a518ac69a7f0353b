"""The findings table: one primary claim and a family of secondary claims, each row with its effect (unit
and good direction), interval, n, p and verdict, computed here from the metrics files and the similarity
summary (verdicts decided by pipeline.stats.verdicts, worded by pipeline.report.text).

- Primary: "the ticket is non-inferior to dense", read at the round whose mean prunable sparsity lies
  within report.primary_sparsity ± report.primary_tolerance (none there: "not measured", naming the
  nearest round). Effect: the geometric-mean FID ratio ticket/dense over seeds (pipeline.stats.logscale);
  non-inferior when the interval's upper end is below 1 + report.margin. Its p is unadjusted.
- Secondary (the family): ticket vs dense at every other round, ticket vs each control, the similarity
  claims. Their p-values are Holm-adjusted over the family, and a secondary verdict other than
  inconclusive needs both its interval and its Holm-adjusted p < 1 − level.
- p is the t-test's on the log scale, the test whose interval decides the verdict: against the margin
  (two-sided, so p < 1 − level exactly when the interval excludes 1 + margin) for non-inferiority,
  against ratio 1 for the controls. Similarity rows carry the similarity stage's own p. The exact
  sign-flip p stays in the row ('exact_p') and its floor 2/2ⁿ is a footnote.
- The primary verdict is qualified by budget evidence (dense and the primary ticket retrained at 2T),
  never by the held-out loss convergence rule (descriptive only).

Rows are dicts (keys: ROW_KEYS) so the page builder can render them; caveats are footnotes, numbered
by `footnotes`, never repeated in cells.
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Optional

import pandas as pd

from pipeline.report import frontier as FR
from pipeline.report.fid_intervals import fid_difference, fid_ratio
from pipeline.report.render import Table
from pipeline.report.text import frontier_sentence, magnitude_row_sentence, pct
from pipeline.stats.logscale import RatioEstimate
from pipeline.stats.multiplicity import holm
from pipeline.stats.verdicts import CONTRADICTED, INCONCLUSIVE, SUPPORTED, beyond_margin, superiority, within_margin

NOT_MEASURED = "not measured"
PRIMARY, SECONDARY = "primary", "secondary"
TICKET_CLAIM = "the ticket is non-inferior to dense (FID)"
SIM_CLAIMS = {  # key in similarity summary.json 'claims' -> the claim as the table states it
    "upstream_vs_downstream": "upstream blocks agree more than downstream blocks (forward order)",
    "resolution_matched": "encoder blocks agree more than decoder blocks at the same resolution",
    "beyond_magnitude": "the two tickets agree beyond what each shares with its starting magnitudes",
    "fan_in": "upstream agree more than downstream after partialling out log fan-in",
}
ROW_KEYS = ("claim", "read_at", "effect", "unit", "ci", "n", "p", "p_holm", "exact_p", "verdict", "qualifier",
            "role", "notes", "sparsity", "margin", "level", "test", "also")
MAX_CELL = 120
# budget qualifiers of the primary verdict
NO_BUDGET, BUDGET_CHANGES, BUDGET_STABLE = ("provisional: no budget evidence", "provisional: verdict changes at 2T",
                                            "budget-stable (T and 2T agree)")
NOTE_BUDGET = ("budget: the primary verdict is checked by retraining dense and the primary-round ticket at twice "
               "the training budget (2T); 'budget-stable' when the verdicts at T and 2T agree, 'provisional' else")
NOTE_BUDGET_SCOPE = "no 2T retraining behind this row: the budget check covers dense and the primary-round ticket"
NOTE_HOLM = ("p (Holm): Holm-adjusted over the secondary rows with a p-value; a secondary verdict needs its "
             "interval and its Holm-adjusted p below {alpha:g}; the primary row's p is unadjusted")
NOTE_P = ("p: t-test on log FID whose interval decides the verdict (against the margin for non-inferiority, "
          "so p < {alpha:g} exactly when the interval excludes it; against ratio 1 for controls)")
NOTE_SIM_P = ("similarity p: the similarity stage's own test (permutation within layer types, or sign-flip over "
              "layers); interval: over ticket pairs of one θ0, the seeds vary the data order only")


def small_n_note(n: int, level: float = 0.95) -> str:
    """The exact-test floor over n seeds, as a footnote."""
    floor = 2 / 2 ** n
    need = math.ceil(math.log2(2 / (1 - level)) - 1e-12)
    return (f"with {n} seeds an exact test cannot go below p = 2/2^{n} = {floor:.3g}"
            + (f"; it takes {need} seeds to reach {1 - level:g}" if floor > 1 - level else ""))


def finding(claim: str, read_at: str, verdict: str, *, effect: float = math.nan, unit: str = "",
            ci: tuple[float, float] = (math.nan, math.nan), n: Optional[int] = None, p: float = math.nan,
            exact_p: float = math.nan, role: str = SECONDARY, notes: tuple[str, ...] = (),
            sparsity: float = math.nan, margin: float = math.nan, level: float = 0.95, test: str = "",
            also: str = "") -> dict[str, Any]:
    """One row (ROW_KEYS). p_holm is filled in by `adjust` (the primary keeps its unadjusted p). The
    primary's verdict reads '<verdict>; <qualifier>', the qualifier (budget evidence) also under 'qualifier'."""
    return {"claim": claim, "read_at": read_at, "effect": effect, "unit": unit, "ci": [ci[0], ci[1]], "n": n,
            "p": p, "p_holm": p if role == PRIMARY else math.nan, "exact_p": exact_p, "verdict": verdict,
            "qualifier": "", "role": role, "notes": list(notes), "sparsity": sparsity, "margin": margin, "level": level,
            "test": test, "also": also}


# -- the primary claim ---------------------------------------------------------------------------
def budget_qualifier(budget: Optional[Mapping[str, Any]]) -> str:
    """How the budget evidence {'verdict_T', 'verdict_2T', 'stable'} qualifies the primary verdict."""
    if budget is None:
        return NO_BUDGET
    missing = [k for k in ("verdict_T", "verdict_2T", "stable") if k not in budget]
    if missing:
        raise ValueError(f"budget evidence lacks {missing}")
    return BUDGET_STABLE if bool(budget["stable"]) else BUDGET_CHANGES


def ratio_verdict(est: RatioEstimate, bound: float) -> str:
    """Non-inferiority of a FID ratio (lower is better): supported when the upper end is below `bound`,
    contradicted when the lower end is above it, else inconclusive (pipeline.stats.verdicts)."""
    log_bound = math.log(bound)
    if within_margin(est.log.high, log_bound):
        return SUPPORTED
    return CONTRADICTED if beyond_margin(est.log.low, log_bound) else INCONCLUSIVE


def primary_round(params, df: pd.DataFrame) -> tuple[Optional[int], Optional[int], Optional[float]]:
    """(round within primary_sparsity ± primary_tolerance or None, nearest round or None, its sparsity)."""
    by_round = df[df["kind"] == "ticket"].groupby("round")["sparsity"].mean()
    if by_round.empty:
        return None, None, None
    gap = (by_round - params.report.primary_sparsity).abs()
    nearest = int(gap.idxmin())
    hit = nearest if gap[nearest] <= params.report.primary_tolerance + 1e-12 else None
    return hit, nearest, float(by_round[nearest])


def _ticket_unit(bound: float) -> str:
    return f"FID ratio ticket/dense (<{bound:.2f} good)"


def _round_at(df: pd.DataFrame, kind: str, k: int) -> str:
    sp = df.loc[(df["kind"] == kind) & (df["round"] == k), "sparsity"].mean()
    return f"round {k} ({pct(sp)} prunable, {pct(FR.global_sparsity(df, kind, None, k))} of all weights)"


def _ticket_row(params, df: pd.DataFrame, runs: dict, k: int, role: str, notes: tuple[str, ...]) -> dict[str, Any]:
    seeds, level, bound = list(params.imp.seeds), params.report.level, 1 + params.report.margin
    est = fid_ratio(df, runs, ("ticket", k), ("dense", 0), seeds, level, bound)
    delta = fid_difference(df, runs, ("ticket", k), ("dense", 0), seeds, level)
    loss = FR.loss_difference(runs, ("ticket", k), ("dense", 0), seeds, level)
    sp = float(df.loc[(df["kind"] == "ticket") & (df["round"] == k), "sparsity"].mean())
    verdict = ratio_verdict(est, bound)
    return finding(TICKET_CLAIM, _round_at(df, "ticket", k), verdict, effect=est.ratio, unit=_ticket_unit(bound),
                   ci=est.ci, n=est.n, p=est.log.t_p, exact_p=est.log.exact_p, role=role,
                   notes=notes + ((small_n_note(est.n, level),) if est.n < 10 else ()), sparsity=sp,
                   margin=params.report.margin, level=level,
                   test=(f"FID ratio ticket/dense; {est.rule}; non-inferior when the upper end < {bound:.2f} "
                         f"(1 + report.margin); population: {params.population()}"),
                   also=(f"ΔFID {FR.estimate_text(delta)}; Δ held-out loss {FR.estimate_text(loss, '+.5f')}"))


def primary_finding_row(params, df: pd.DataFrame, runs: dict,
                        budget: Optional[Mapping[str, Any]] = None) -> dict[str, Any]:
    """THE primary claim's row, its verdict qualified by the budget evidence (None: provisional)."""
    target, tol = params.report.primary_sparsity, params.report.primary_tolerance
    k, nearest, sp = primary_round(params, df)
    window = f"{pct(target)} ± {100 * tol:g} %"
    if k is None:
        near = f"nearest: round {nearest} at {pct(sp)}" if nearest is not None else "no pruned round"
        return finding(TICKET_CLAIM, f"no round at {window} ({near})", NOT_MEASURED, role=PRIMARY,
                       unit=_ticket_unit(1 + params.report.margin), margin=params.report.margin,
                       sparsity=target, level=params.report.level,
                       test=f"no round's mean prunable sparsity lies within {window} ({near}); nothing is guessed")
    row = _ticket_row(params, df, runs, k, PRIMARY, (NOTE_BUDGET, NOTE_P.format(alpha=1 - params.report.level)))
    row["qualifier"] = budget_qualifier(budget)
    row["verdict"] = f"{row['verdict']}; {row['qualifier']}"
    return row


# -- secondary claims ----------------------------------------------------------------------------
def ticket_rounds(params, df: pd.DataFrame, runs: dict, fr: Optional[FR.FrontierResult],
                  skip: Optional[int]) -> list[dict[str, Any]]:
    """Ticket vs dense at every other round (the frontier's rounds), each its own non-inferiority test;
    the fixed-sequence frontier is a footnote."""
    notes = [NOTE_BUDGET_SCOPE]
    if fr is not None:
        notes.append("frontier (fixed sequence over the rounds, geometric-mean FID ratio): "
                     + frontier_sentence(fr.over_seeds))
    return [_ticket_row(params, df, runs, r.k, SECONDARY, tuple(notes)) for r in params.imp.rounds if r.k != skip]


def ticket_vs_control(params, df: pd.DataFrame, runs: dict, kind: str, k: int) -> dict[str, Any]:
    """FID(control) / FID(ticket) at round k, paired by seed and shared samples; > 1 supports the ticket."""
    claim = f"the ticket beats the {kind} control (FID)"
    unit = f"FID ratio {kind}/ticket (>1 good)"
    seeds = sorted(set(df.loc[(df["kind"] == kind) & (df["round"] == k), "seed"]) &
                   set(df.loc[(df["kind"] == "ticket") & (df["round"] == k), "seed"]))
    if not seeds:
        return finding(claim, f"round {k}", NOT_MEASURED, unit=unit,
                       test=f"no ticket and {kind} control both evaluated at round {k}")
    level = params.report.level
    est = fid_ratio(df, runs, (kind, k), ("ticket", k), seeds, level)
    delta = fid_difference(df, runs, (kind, k), ("ticket", k), seeds, level)
    loss = FR.loss_difference(runs, (kind, k), ("ticket", k), seeds, level)
    verdict = superiority((est.log.low, est.log.high))
    notes = (NOTE_BUDGET_SCOPE, NOTE_P.format(alpha=1 - level)) + ((small_n_note(est.n, level),) if est.n < 10 else ())
    return finding(claim, _round_at(df, kind, k), verdict, effect=est.ratio, unit=unit, ci=est.ci, n=est.n,
                   p=est.log.t_p, exact_p=est.log.exact_p, notes=notes, level=level,
                   sparsity=float(df.loc[(df["kind"] == kind) & (df["round"] == k), "sparsity"].mean()),
                   test=f"FID ratio {kind}/ticket; {est.rule}; supported if the interval lies above 1, "
                        f"contradicted if below 1; population: {params.population()}",
                   also=f"ΔFID {kind} − ticket {FR.estimate_text(delta)}; held-out loss control − ticket "
                        f"{FR.estimate_text(loss, '+.5f')}")


def _num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def similarity_findings(summary: Optional[dict[str, Any]], metric: str) -> list[dict[str, Any]]:
    """Rows from similarity summary.json 'claims' (effect over ticket pairs, ci, test, p_value, round,
    direction, pairs); n counts ticket pairs."""
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
        who = f"; {n_pairs} ticket pair{'s' if n_pairs != 1 else ''}" + (f" of {len(seeds)} seeds" if seeds else "")

    def per_pair(c: dict) -> str:
        pairs = c.get("pairs")
        if not isinstance(pairs, dict) or len(pairs) < 2:
            return ""
        return "per pair " + ", ".join(f"{k} {float(v):+.3f}" for k, v in pairs.items() if _num(v))

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
        also = [per_pair(c)]
        if key == "upstream_vs_downstream" and isinstance(c.get("without_skip"), dict):
            w = c["without_skip"]
            if _num(w.get("effect")) and w.get("layers_left_out"):
                ci_w = w.get("ci")
                span = f" [{ci_w[0]:+.3f}, {ci_w[1]:+.3f}]" if isinstance(ci_w, list) else ""
                also.append(f"without the {len(w['layers_left_out'])} 1×1 skip convs {w['effect']:+.3f}{span}")
        if key == "beyond_magnitude":
            if _num(c.get("observed_agreement")) and _num(c.get("predicted_agreement")):
                also.append(f"observed κ {c['observed_agreement']:.3f} vs predicted {c['predicted_agreement']:.3f}")
            if _num(c.get("layers_above")) and _num(c.get("layers")):
                also.append(f"above the prediction in {int(c['layers_above'])} of {int(c['layers'])} layers")
        if key == "fan_in" and _num(c.get("r")):
            also.insert(0, f"r(agreement, log fan-in) = {c['r']:+.2f}")
        rule = f"; {c['ci_rule']}" if c.get("ci_rule") else ""
        good = "<0 good" if direction == "negative" else ">0 good"
        # the similarity stage decides with both sources of variance (pairs and layers) and the layer
        # permutation p agreeing; its `p` is the larger of the two, the one Holm adjusts
        verdict = INCONCLUSIVE if c.get("verdict") == "inconclusive" else superiority(ci, direction)
        p_sim = c.get("p", c.get("p_value"))
        rows.append(finding(claim, f"round {c.get('round', '?')}{who}", verdict, effect=effect,
                            unit=f"{c.get('metric', metric)} difference ({good})", ci=ci,
                            n=n_pairs if isinstance(n_pairs, int) else None,
                            p=float(p_sim) if _num(p_sim) else math.nan, notes=(NOTE_SIM_P,),
                            test=f"{c.get('metric', metric)}: {c.get('test', '?')}{rule}",
                            also="; ".join(a for a in also if a)))
    return rows


# -- the family ----------------------------------------------------------------------------------
def adjust(rows: list[dict[str, Any]], level: float = 0.95) -> list[dict[str, Any]]:
    """Holm-adjust the secondary rows' p over the family (rows with a finite p) and demote a secondary
    verdict whose Holm-adjusted p is not below 1 − level to inconclusive. Returns new row dicts."""
    out = [dict(r, notes=list(r["notes"])) for r in rows]
    fam = [i for i, r in enumerate(out) if r["role"] != PRIMARY and _num(r["p"])]
    alpha = 1 - level
    for i, adj in zip(fam, holm([out[i]["p"] for i in fam])):
        r = out[i]
        r["p_holm"] = adj
        r["notes"].append(NOTE_HOLM.format(alpha=alpha))
        if r["verdict"] in (SUPPORTED, CONTRADICTED) and not adj < alpha:
            r["verdict"] = INCONCLUSIVE
    for r in out:
        if r["role"] == PRIMARY:
            r["p_holm"] = r["p"]
    return out


def collect(params, df: pd.DataFrame, runs: dict, fr: Optional[FR.FrontierResult],
            sim_summary: Optional[dict[str, Any]], metric: str,
            budget: Optional[Mapping[str, Any]] = None) -> list[dict[str, Any]]:
    """Every claim's row, in the table's order: the primary claim, ticket vs dense at the other rounds,
    ticket vs each control at each of its rounds, similarity; secondary p Holm-adjusted. `budget`: the
    budget evidence {'verdict_T', 'verdict_2T', 'stable'} of the primary claim (None: provisional)."""
    primary = primary_finding_row(params, df, runs, budget)
    k, _, _ = primary_round(params, df)
    rows = [primary] + ticket_rounds(params, df, runs, fr, k)
    controls = df.loc[~df["main"], ["kind", "round"]].drop_duplicates().sort_values(["kind", "round"])
    rows += [ticket_vs_control(params, df, runs, str(kind), int(kk)) for kind, kk in controls.itertuples(index=False)]
    rows += similarity_findings(sim_summary, metric)
    return adjust(rows, params.report.level)


def primary_finding(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The primary row of `rows` (exactly one)."""
    found = [r for r in rows if r.get("role") == PRIMARY]
    if len(found) != 1:
        raise ValueError(f"expected one primary finding, got {len(found)}")
    return found[0]


def answer_sentence(row: Mapping[str, Any]) -> str:
    """The primary finding in one sentence (<= 200 characters), for the top of the report."""
    margin = f"{100 * row['margin']:g} % margin" if _num(row.get("margin")) else "margin"
    if row["verdict"] == NOT_MEASURED:
        text = f"Not measured: {row['read_at']}, so ticket vs dense was not tested there."
        return text if len(text) <= 200 else text[:199] + "…"
    lo, hi = row["ci"]
    base = row["verdict"].split("; ")[0]
    qual = row.get("qualifier") or ""
    what = {SUPPORTED: f"non-inferior within the {margin}", CONTRADICTED: f"worse than dense beyond the {margin}",
            INCONCLUSIVE: f"inconclusive against the {margin}"}.get(base, base)
    span = f" [{lo:.2f}, {hi:.2f}]" if _num(lo) and _num(hi) else ""
    n = row.get("n")
    tail = "; ".join(x for x in (f"{n} seed{'s' if n != 1 else ''}" if n else "", qual) if x)
    text = (f"At {pct(row['sparsity'])} sparsity the ticket's FID is {row['effect']:.2f}× dense{span}: {what}"
            + (f" ({tail})." if tail else "."))
    return text if len(text) <= 200 else text[:199] + "…"


# -- rendering -----------------------------------------------------------------------------------
def footnotes(rows: list[dict[str, Any]]) -> list[str]:
    """Every distinct note of `rows`, in order of first appearance; note i is footnote [i + 1]."""
    out: list[str] = []
    for r in rows:
        for n in r.get("notes", ()):
            if n not in out:
                out.append(n)
    return out


def _effect_cell(r: Mapping[str, Any]) -> str:
    if not _num(r["effect"]):
        return f"– ({r['unit']})" if r.get("unit") else "–"
    ratio = "ratio" in r.get("unit", "")
    return f"{r['effect']:.3f}{'×' if ratio else ''} — {r['unit']}" if ratio else f"{r['effect']:+.3f} — {r['unit']}"


def _p_cell(r: Mapping[str, Any]) -> str:
    if not _num(r["p"]):
        return "–"
    if r["role"] == PRIMARY:
        return f"{r['p']:.2g} (unadjusted, primary)"
    return f"{r['p_holm']:.2g} (raw {r['p']:.2g})" if _num(r["p_holm"]) else f"{r['p']:.2g}"


def _cell(text: str) -> str:
    return text if len(text) <= MAX_CELL else text[:MAX_CELL - 1] + "…"


def findings_table(rows: list[dict[str, Any]]) -> Table:
    """claim | read at | effect | interval | n | p (Holm) | verdict [footnotes] | role; no cell longer than
    MAX_CELL characters (details: the row's 'test' and 'also' keys, and `footnotes`)."""
    notes = footnotes(rows)
    level = rows[0].get("level", 0.95) if rows else 0.95
    body = []
    for r in rows:
        lo, hi = r["ci"]
        ratio = "ratio" in r.get("unit", "")
        span = "–" if not (_num(lo) and _num(hi)) else (f"[{lo:.3f}, {hi:.3f}]" if ratio else f"[{lo:+.3f}, {hi:+.3f}]")
        marks = "".join(f"[{notes.index(n) + 1}]" for n in r.get("notes", ()))
        body.append([_cell(c) for c in (r["claim"], r["read_at"], _effect_cell(r), span,
                                        "–" if r.get("n") is None else str(r["n"]), _p_cell(r),
                                        f"{r['verdict']} {marks}".strip(), r["role"])])
    return Table(["claim", "read at", "effect", f"{100 * level:g} % interval", "n", "p (Holm)", "verdict", "role"],
                 body)


def footnote_lines(rows: list[dict[str, Any]]) -> list[str]:
    """The footnotes for below the table, in the order of their marks: the notes list numbers them, so
    mark [k] is its k-th item (the list puts the number, not the text)."""
    return list(footnotes(rows))


def methods_paragraph(params) -> str:
    """How every verdict of the table is made (for the findings section)."""
    n = len(params.imp.seeds)
    alpha = 1 - params.report.level
    return (f"One primary claim, named before the run: the ticket is non-inferior to dense, read at the round whose "
            f"mean prunable sparsity is within {pct(params.report.primary_sparsity)} ± "
            f"{100 * params.report.primary_tolerance:g} % (report.primary_sparsity, report.primary_tolerance). "
            f"FID effects are ratios: per-seed log-FID differences paired by seed and by the shared samples, "
            f"their mean's interval (between-seed variance plus the shared-noise term, Student-t with n − 1 = "
            f"{n - 1} df) mapped back with exp; non-inferior when the upper end is below 1 + report.margin = "
            f"{1 + params.report.margin:.2f}. Every p is the t-test's whose interval decides the verdict "
            f"(similarity rows: the similarity stage's own test); the exact sign-flip test needs no normality but "
            f"with {n} seeds cannot go below 2/2^{n} = {2 / 2 ** n:.2g}. The other rows are secondary: their p "
            f"is Holm-adjusted over that family, and a secondary verdict needs its interval and its adjusted p "
            f"below {alpha:g}. The primary verdict is qualified by the budget check (T vs 2T), not by the held-out "
            f"loss, which is shown as a description. Population: {params.population()}.")


def beyond_magnitude_sentence(rows: list[dict[str, Any]]) -> Optional[str]:
    """The magnitude claim's row in words (pipeline.report.text), if it was measured."""
    for r in rows:
        if r["claim"] == SIM_CLAIMS["beyond_magnitude"] and r["verdict"] != NOT_MEASURED:
            return magnitude_row_sentence(r)
    return None


def json_ready(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Findings for reports/metrics.json: NaN becomes None so the file stays valid JSON."""
    clean = lambda v: None if isinstance(v, float) and math.isnan(v) else v
    return [{k: ([clean(x) for x in v] if isinstance(v, list) else clean(v)) for k, v in r.items()} for r in rows]
