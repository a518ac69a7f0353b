"""The layerwise claim on the FID axis: per round, layerwise − uniform FID paired on seed, t interval,
Holm over rounds, a verdict per round."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from pipeline.report.compare_paired import _holm, paired_markdown, paired_rounds
from pipeline.stats.verdicts import CONTRADICTED, INCONCLUSIVE, SUPPORTED


def _runs(deltas: dict[int, list[float]], seed_fid=(20.0, 35.0, 50.0, 28.0)):
    """Uniform and layerwise runs: a large per-seed FID level shared by both schedules (what pairing
    removes) and per round the given layerwise − uniform differences by seed."""
    rows = []
    for k, ds in deltas.items():
        for s, d in enumerate(ds, start=1):
            base = seed_fid[s - 1] + 5 * k
            rows += [{"experiment": "main", "schedule": "uniform", "kind": "ticket", "seed": s, "round": k,
                      "fid": base, "sparsity": 1 - 0.6 ** k},
                     {"experiment": "lw", "schedule": "layerwise", "kind": "ticket", "seed": s, "round": k,
                      "fid": base + d, "sparsity": 1 - 0.6 ** k}]
        for s in range(1, len(ds) + 1):
            rows.append({"experiment": "main", "schedule": "uniform", "kind": "dense", "seed": s, "round": 0,
                         "fid": 17.0, "sparsity": 0.0})
    exps = pd.DataFrame({"experiment": ["main", "lw"], "schedule": ["uniform", "layerwise"]})
    return pd.DataFrame(rows), exps


def test_paired_differences_by_round_with_t_interval_holm_and_verdicts():
    deltas = {1: [-5.0, -5.2, -4.9, -5.1], 2: [0.3, -0.4, 0.2, -0.1], 3: [3.0, 3.1, 2.9, 3.2]}
    rows, exps = _runs(deltas)
    t = paired_rounds(rows, exps)
    assert t["round"].tolist() == [1, 2, 3] and (t["seeds"] == 4).all()
    for _, r in t.iterrows():
        d = np.array(deltas[r["round"]])
        res = stats.ttest_1samp(d, 0.0)
        ci = res.confidence_interval(0.95)
        assert r["delta_fid"] == pytest.approx(d.mean()) and r["p"] == pytest.approx(res.pvalue)
        assert (r["delta_low"], r["delta_high"]) == pytest.approx((ci.low, ci.high))
        assert r["sparsity_uniform"] == pytest.approx(r["sparsity_layerwise"])
    assert t["p_holm"].tolist() == pytest.approx(_holm(t["p"].tolist()))
    assert t["verdict"].tolist() == [SUPPORTED, INCONCLUSIVE, CONTRADICTED]
    md = "\n".join(paired_markdown(t))
    assert "paired on seed" in md and md.count(SUPPORTED) >= 1 and "Holm" in md


def test_holm_is_step_down_and_monotone():
    assert _holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    out = _holm([0.2, math.nan, 0.01])
    assert out[0] == pytest.approx(0.2) and math.isnan(out[1]) and out[2] == pytest.approx(0.02)


def test_holm_can_undo_a_single_round_call():
    # one round alone would pass (p just under 0.05), but among five rounds Holm keeps it inconclusive
    rng = np.random.default_rng(0)
    deltas = {k: list(rng.normal(0, 1, 4)) for k in range(1, 5)}
    deltas[5] = [-1.0, -1.6, -0.4, -1.1]
    t = paired_rounds(*_runs(deltas))
    last = t[t["round"] == 5].iloc[0]
    assert last["p"] < 0.05 and last["p_holm"] >= 0.05 and last["verdict"] == INCONCLUSIVE


def test_no_layerwise_run_gives_an_empty_table():
    rows, exps = _runs({1: [1.0, 2.0]})
    t = paired_rounds(rows[rows["experiment"] == "main"], exps[exps["experiment"] == "main"])
    assert t.empty and "No layerwise" in "\n".join(paired_markdown(t))
