"""The findings table (pipeline.report.findings): one primary claim, Holm over the secondary family,
the budget qualifier of the primary verdict, short cells with numbered footnotes, the one-sentence answer."""
from __future__ import annotations

import math

import pytest

from pipeline.report import findings as FD
from pipeline.report import frontier as FR
from pipeline.report.inputs import load_eval_table
from pipeline.stats.verdicts import INCONCLUSIVE, SUPPORTED
from test_report import CLAIMS, make_fake_results, _params


def _row(claim, p, verdict=SUPPORTED, role=FD.SECONDARY, **kw):
    return FD.finding(claim, "round 2", verdict, effect=1.2, unit="FID ratio a/b (>1 good)", ci=(1.05, 1.3), n=3,
                      p=p, role=role, **kw)


def test_holm_is_printed_beside_every_secondary_row_and_decides_its_verdict():
    rows = [_row("primary", 0.03, role=FD.PRIMARY), _row("a", 0.01), _row("b", 0.04), _row("c", 0.03),
            _row("d", math.nan, verdict=INCONCLUSIVE)]
    out = FD.adjust(rows, level=0.95)
    # family {0.01, 0.04, 0.03}: 3·0.01 = 0.03, then max(0.03, 2·0.03) = 0.06, then max(0.06, 1·0.04) = 0.06
    assert [r["p_holm"] for r in out[1:4]] == pytest.approx([0.03, 0.06, 0.06])
    assert math.isnan(out[4]["p_holm"])  # no p: not in the family
    assert out[0]["p_holm"] == out[0]["p"] == 0.03  # the primary keeps its unadjusted p
    assert [r["verdict"] for r in out] == [SUPPORTED, SUPPORTED, INCONCLUSIVE, INCONCLUSIVE, INCONCLUSIVE]
    cells = {r[0]: r[5] for r in FD.findings_table(out).rows}
    assert cells == {"primary": "0.03 (unadjusted, primary)", "a": "0.03 (raw 0.01)", "b": "0.06 (raw 0.04)",
                     "c": "0.06 (raw 0.03)", "d": "–"}
    assert rows[2]["verdict"] == SUPPORTED  # adjust() returns new rows


def test_the_primary_verdict_consults_the_budget_evidence(tmp_path):
    make_fake_results(tmp_path, with_optional=False)
    params = _params(margin=0.8, primary_sparsity=0.909)
    df = load_eval_table(params, tmp_path)
    runs = FR.load_paired(params, df, tmp_path)
    fr = FR.frontier(params, df, runs)
    plain = FD.collect(params, df, runs, fr, None, "kappa")  # no budget evidence
    assert FD.primary_finding(plain)["verdict"] == "supported; provisional: no budget evidence"
    stable = FD.collect(params, df, runs, fr, None, "kappa",
                        budget={"verdict_T": SUPPORTED, "verdict_2T": SUPPORTED, "stable": True})
    assert FD.primary_finding(stable)["verdict"] == "supported; budget-stable (T and 2T agree)"
    moved = FD.collect(params, df, runs, fr, None, "kappa",
                       budget={"verdict_T": SUPPORTED, "verdict_2T": INCONCLUSIVE, "stable": False})
    assert FD.primary_finding(moved)["verdict"] == "supported; provisional: verdict changes at 2T"
    with pytest.raises(ValueError, match="stable"):
        FD.collect(params, df, runs, fr, None, "kappa", budget={"verdict_T": SUPPORTED, "verdict_2T": SUPPORTED})
    assert FD.NOTE_BUDGET in FD.primary_finding(plain)["notes"]
    # secondary ticket rows say the budget check does not cover them, and are never "provisional" by convergence
    tickets = [r for r in plain if r["role"] == FD.SECONDARY and r["claim"] == FD.TICKET_CLAIM]
    assert len(tickets) == 2 and all(FD.NOTE_BUDGET_SCOPE in r["notes"] and not r["qualifier"] for r in tickets)


def _realistic_rows(tmp_path):
    """The default study's shape with controls and every similarity claim over 28 pairs of 8 seeds."""
    make_fake_results(tmp_path, with_optional=False, controls=True)
    params = _params(margin=0.1, primary_sparsity=0.909)
    df = load_eval_table(params, tmp_path)
    runs = FR.load_paired(params, df, tmp_path)
    pairs = {f"{a}-{b}": 0.15 + 0.001 * (a + b) for a in range(1, 9) for b in range(a + 1, 9)}
    claims = {k: dict(v, pairs=pairs, ci_rule="delete-one-seed jackknife over the 8 seeds, Student-t, 7 df " * 3,
                      test="permutation of the upstream/downstream labels within layer types " * 3)
              for k, v in CLAIMS.items()}
    claims["fan_in"] = dict(CLAIMS["upstream_vs_downstream"], r=0.4, pairs=pairs)
    summary = {"claims": claims, "population": {"n_pairs": 28, "seeds": list(range(1, 9)), "theta0": "shared"}}
    return params, FD.collect(params, df, runs, FR.frontier(params, df, runs), summary, "kappa")


def test_no_cell_is_longer_than_120_characters_and_caveats_are_footnotes(tmp_path):
    params, rows = _realistic_rows(tmp_path)
    assert len(rows) == 3 + 2 + 4  # primary, rounds 1 and 2, two controls, four similarity claims
    table = FD.findings_table(rows)
    assert table.header == ["claim", "read at", "effect", "95 % interval", "n", "p (Holm)", "verdict", "role"]
    longest = max(len(c) for r in table.rows for c in r)
    assert longest <= FD.MAX_CELL, [c for r in table.rows for c in r if len(c) > FD.MAX_CELL]
    notes = FD.footnotes(rows)
    assert len(notes) == len(set(notes))
    floor = "with 2 seeds an exact test cannot go below p = 2/2^2 = 0.5; it takes 6 seeds to reach 0.05"
    assert floor in notes
    mark = f"[{notes.index(floor) + 1}]"
    primary = table.rows[0]
    assert primary[-1] == "primary" and mark in primary[6] and floor not in " ".join(primary)
    assert FD.footnote_lines(rows)[notes.index(floor)] == floor  # item k of the numbered notes is mark [k]
    # every secondary row with a p carries the Holm footnote; the similarity p names its test
    holm = f"[{notes.index(FD.NOTE_HOLM.format(alpha=0.05)) + 1}]"
    assert all(holm in r[6] for r in table.rows if r[-1] == "secondary" and r[5] != "–")
    assert FD.NOTE_SIM_P in notes
    assert "Holm-adjusted" in FD.methods_paragraph(params) and "n − 1 = 1 df" in FD.methods_paragraph(params)


def test_answer_sentence_and_primary_finding(tmp_path):
    _, rows = _realistic_rows(tmp_path)
    row = FD.primary_finding(rows)
    assert set(FD.ROW_KEYS) <= set(row) and row["role"] == "primary" and row["read_at"].startswith("round 3")
    sentence = FD.answer_sentence(row)
    lo, hi = row["ci"]
    assert sentence == (f"At 90.9 % sparsity the ticket's FID is {row['effect']:.2f}× dense [{lo:.2f}, {hi:.2f}]: "
                        "worse than dense beyond the 10 % margin (2 seeds; provisional: no budget evidence).")
    assert len(sentence) <= 200
    ok = dict(row, effect=1.05, ci=[0.98, 1.08], n=3, sparsity=0.9001,
              verdict="supported; budget-stable (T and 2T agree)", qualifier="budget-stable (T and 2T agree)")
    assert FD.answer_sentence(ok) == ("At 90.0 % sparsity the ticket's FID is 1.05× dense [0.98, 1.08]: non-inferior "
                                      "within the 10 % margin (3 seeds; budget-stable (T and 2T agree)).")
    missing = FD.finding(FD.TICKET_CLAIM, "no round at 90.0 % ± 0.5 % (nearest: round 3 at 93.6 %)", FD.NOT_MEASURED,
                         role=FD.PRIMARY, margin=0.1)
    assert FD.answer_sentence(missing).startswith("Not measured: no round at 90.0 % ± 0.5 % (nearest: round 3")
    with pytest.raises(ValueError):
        FD.primary_finding([r for r in rows if r["role"] != "primary"])


def test_json_ready_keeps_lists_and_drops_nan(tmp_path):
    _, rows = _realistic_rows(tmp_path)
    clean = FD.json_ready(rows)
    assert all(isinstance(r["notes"], list) and isinstance(r["ci"], list) for r in clean)
    assert all(v is None or not (isinstance(v, float) and math.isnan(v)) for r in clean for v in r.values())
