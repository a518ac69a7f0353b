"""The per-run report (pipeline.report) on a fake results set, and the cross-experiment comparison
(pipeline.report.compare) on crafted and real `dvc exp show --json` output."""
from __future__ import annotations

import json
import math
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from pipeline.app.params import parse_params
from pipeline.core.config import ConfigError
from pipeline.report.build import build_report
from pipeline.report.render import png_data_uri

SEEDS, ROUNDS = (1, 2), (1, 2, 3)
LAYERS = ["time_embed.1.weight", "down.0.blocks.0.conv1.weight", "down.1.blocks.0.conv1.weight",
          "mid_block1.conv1.weight", "up.0.blocks.0.conv1.weight", "up.1.blocks.0.conv1.weight",
          "final_block.conv1.weight"]
FIDS = {0: 50.0, 1: 55.5, 2: 59.25, 3: 80.125}  # seed 1; seed 2 is 0.5 higher. Within 10 of dense: rounds 1, 2
SHA = "0123456789ab" + "c" * 52
EDGES = [0, 250, 500, 750, 1000]
CLAIMS = {  # similarity summary.json 'claims' (interface 4)
    "upstream_vs_downstream": {"effect": 0.12, "ci": [0.05, 0.2], "ci_level": 0.95, "test": "bootstrap over layers",
                               "p_value": 0.01, "round": 3, "direction": "positive"},
    "resolution_matched": {"effect": -0.02, "ci": [-0.1, 0.06], "ci_level": 0.95, "test": "bootstrap over levels",
                           "p_value": 0.6, "round": 3, "direction": "positive",
                           "levels": [{"level": i, "encoder": f"down{i}", "decoder": f"up{1 - i}", "resolution": 8 >> i,
                                       "encoder_mean": m, "encoder_ci": [m - 0.1, m + 0.1], "decoder_mean": m + d,
                                       "decoder_ci": [m + d - 0.1, m + d + 0.1], "effect": -d,
                                       "ci": [-d - 0.1, -d + 0.1], "p_value": 0.6}
                                      for i, (m, d) in enumerate([(0.5, 0.0), (0.4, 0.04)])]},
    "beyond_magnitude": {"effect": -0.05, "ci": [-0.09, -0.01], "ci_level": 0.95, "test": "bootstrap over layers",
                         "p_value": 0.02, "round": 3, "direction": "positive", "ticket_agreement": 0.4,
                         "baseline_agreement": 0.45},
}


def _params(**report):
    return parse_params({"budget": {"seeds": []}, "imp": {"seeds": list(SEEDS), "rounds": [{"k": k, "prev": k - 1} for k in ROUNDS]},
                         "controls": {"rounds": [3]}, "report": report})


def _fid(seed: int, k: int) -> float:
    return FIDS[k] + 0.5 * (seed - 1)


def _metrics(seed: int, k: int, schedule: str = "uniform", fid: float | None = None, kind: str | None = None,
             **extra) -> dict:
    sparsity = 1 - 0.45 ** k
    fid = _fid(seed, k) if fid is None else fid
    kind = kind or ("dense" if k == 0 else "ticket")
    return {"seed": seed, "round": k, "schedule": schedule if k else "dense", "sparsity": sparsity,
            "prunable_total": 10000, "prunable_kept": round(10000 * (1 - sparsity)), "params_total": 12000,
            "params_kept": 2000 + round(10000 * (1 - sparsity)), "macs_dense": 3_000_000,
            "macs": int(3_000_000 * (1 - 0.8 * sparsity)), "storage_bytes": int(48000 * (1 - 0.7 * sparsity)),
            "storage_dense_bytes": 48000, "fid": fid, "kid_mean": 0.01 * (k + 1) + 0.001 * seed,
            "kid_std": 0.001, "heldout_loss": 0.04 + 0.001 * k, "feature_extractor": "classifier",
            "num_samples": 500, "sampler": "DDIM-50", "kind": kind, "rewind": "none" if k == 0 else "checkpoint",
            "fid_ci": [fid - 1.0, fid + 1.0], "fid_std": 0.5, "fid_ci_level": 0.95, "fid_bootstrap": 200,
            "fid_ci_method": "generated samples resampled with replacement; reference statistics fixed",
            "fid_inf": fid - 2.0, "fid_inf_ci": [fid - 3.5, fid - 0.5], "fid_inf_sizes": [100, 200, 500],
            "extractor_sha256": SHA, "heldout_loss_se": 0.0005,
            "heldout_loss_by_t": [0.1 / (b + 1) * (1 + 0.1 * k + (0.3 if kind != "ticket" and k else 0))
                                  for b in range(len(EDGES) - 1)],
            "heldout_t_edges": EDGES, **extra}


def _png(path: Path, value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((34, 34), value, dtype=np.uint8)).save(path)


def _write(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def _paired(seed: int, k: int, kind: str, shift: float = 0.0) -> dict:
    """paired.json: FID split errors with a component shared by every run (common random numbers),
    per-item held-out losses on shared items, and the dense run's flat (converged) held-out curve."""
    common = np.random.default_rng(0).normal(size=40)
    own = np.random.default_rng(100 * seed + k + (7 if kind != "ticket" else 0)).normal(size=40)
    items = np.random.default_rng(1).uniform(0.02, 0.06, size=64)
    noise = np.random.default_rng(1000 + 10 * seed + k).normal(scale=0.001, size=64)
    out = {"fid_split_errors": (0.3 * common + 0.2 * own).tolist(),
           "heldout_items": (items + 0.001 * k + shift + noise).tolist()}
    if k == 0 and kind == "dense":
        out["heldout_curve"] = {str(step): (items + noise + 1e-6 * (3 - i)).tolist()
                                for i, step in enumerate((50, 75, 100))}
    return out


def make_fake_results(root: Path, with_optional: bool = True, controls: bool = False) -> None:
    for seed in SEEDS:
        for k in (0, *ROUNDS):
            _write(root / f"eval/s{seed}/r{k}/metrics.json", _metrics(seed, k))
            _write(root / f"eval/s{seed}/r{k}/paired.json", _paired(seed, k, "dense" if k == 0 else "ticket"))
            _png(root / f"eval/s{seed}/r{k}/samples.png", 40 * k + 10)
        for k in ROUNDS:
            sp = 1 - 0.45 ** k
            layers = {n: {"total": 100 * (i + 1), "kept": int(100 * (i + 1) * (1 - sp)), "sparsity": sp + 0.01 * i - 0.03}
                      for i, n in enumerate(LAYERS)}
            _write(root / f"imp/s{seed}/r{k}/prune/mask.json",
                   {"total": 2800, "kept": int(2800 * (1 - sp)), "sparsity": sp, "layers": layers,
                    "seed": seed, "round": k, "schedule": "uniform", "rate": 0.55})
    if controls:  # interface 1: artifacts/eval/controls/{kind}/s{seed}/r{k}/metrics.json, at round 3
        for seed in SEEDS:
            _write(root / f"eval/controls/reinit/s{seed}/r3/metrics.json",
                   _metrics(seed, 3, fid=90.0 + seed, kind="reinit", rewind="checkpoint"))
            _write(root / f"eval/controls/random/s{seed}/r3/metrics.json",
                   _metrics(seed, 3, fid=_fid(seed, 3) + 0.2 * (-1) ** seed, kind="random", rewind="checkpoint"))
            for kind, shift in (("reinit", 0.01), ("random", 0.0)):
                _write(root / f"eval/controls/{kind}/s{seed}/r3/paired.json", _paired(seed, 3, kind, shift))
                _png(root / f"eval/controls/{kind}/s{seed}/r3/samples.png", 200)
        _write(root / "eval/controls/reinit/s9/r3/metrics.json", _metrics(9, 3, fid=1.0, kind="reinit"))  # stale seed
        _write(root / "eval/controls/random/s1/r2/metrics.json", _metrics(1, 2, fid=1.0, kind="random"))  # round not in controls.rounds
    _write(root / "eval/s1/r7/metrics.json", _metrics(1, 3, fid=1.0))  # stale: round 7 not in params
    if with_optional:
        rows = [{"round": k, "layer": n, "block": b, "depth": d, "metric": m, "value": v}
                for k in ROUNDS for d, (n, b) in enumerate(zip(LAYERS, ["time", "down0", "down1", "mid", "up0", "up1", "output"]))
                for m, v in (("kappa", 0.9 - 0.1 * d), ("jaccard", 0.8 - 0.05 * d), ("jaccard_chance", 0.3))]
        (root / "similarity").mkdir(parents=True)
        pd.DataFrame(rows).to_csv(root / "similarity/similarity.csv", index=False)
        _write(root / "similarity/summary.json", {"metric": "kappa", "finding": "Upstream layers agree more (fake).",
                                                  "claims": CLAIMS})
        _write(root / "layer_rates/rates.json", {"metric": "kappa", "strength": 1.0, "target_sparsity": 0.9,
                                                 "agreement": {n: 0.9 - 0.1 * i for i, n in enumerate(LAYERS)},
                                                 "weights": {n: 0.5 + 0.2 * i for i, n in enumerate(LAYERS)}})


EXPECTED = ["fid_vs_sparsity.png", "fid_vs_cost.png", "heldout_by_t.png", "layer_sparsity.png",
            "similarity_heatmap.png", "similarity_depth.png", "similarity_claims.png", "layer_rates.png",
            "samples.png", "dense_convergence.png", "summary.md", "index.html", "fid_vs_sparsity.csv", "heldout_by_t.csv", "metrics.json",
            "headline.json"]


def _md_table(md: str, section: str) -> list[dict]:
    """A table of summary.md's `section` as dicts."""
    part = md.split(f"## {section}", 1)[1].split("\n## ", 1)[0]
    lines = [ln for ln in part.splitlines() if ln.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    return [dict(zip(header, (c.strip() for c in ln.strip("|").split("|")))) for ln in lines[2:]]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """One report on the fake results (two seeds, two control kinds), built once for the tests that read it."""
    pytest.importorskip("pipeline.similarity.agreement")  # block colours and similarity figures come from it
    root = tmp_path_factory.mktemp("run")
    make_fake_results(root / "artifacts", controls=True)
    written = build_report(_params(margin=0.5, primary_sparsity=0.909), out_dir=root / "reports",
                           artifacts_root=root / "artifacts")
    return root, written


def test_report_writes_every_file(report):
    root, written = report
    out = root / "reports"
    assert sorted(p.name for p in written) == sorted(EXPECTED)
    for name in EXPECTED:
        path = out / name
        assert path.stat().st_size > 0, name
        if name.endswith(".png"):
            assert Image.open(path).size[0] > 200
    assert "## Notes" not in (out / "summary.md").read_text()  # nothing optional was missing


def test_findings_table_opens_the_summary(report):
    root, _ = report
    md = (root / "reports/summary.md").read_text()
    first_section = md.split("\n## ", 2)[1]
    assert first_section.startswith("Findings\n")
    table = _md_table(md, "Findings")
    assert list(table[0]) == ["claim", "read at", "effect", "95 % interval", "n", "p (Holm)", "verdict", "role"]
    assert [r["role"] for r in table].count("primary") == 1 and table[0]["role"] == "primary"
    rows = {(r["claim"], r["read at"].split(" (")[0]): r for r in table}
    ticket = rows[("the ticket is non-inferior to dense (FID)", "round 3")]
    # round 3 (90.9 %, inside report.primary_sparsity 0.909 ± 0.005): FID ratio 80.125/50 and 80.625/50.5,
    # far beyond the margin 1.5 -> contradicted; no budget evidence -> provisional
    ratio = math.exp((math.log(80.125 / 50) + math.log(80.625 / 50.5)) / 2)
    assert ticket["effect"].startswith(f"{ratio:.3f}× — FID ratio ticket/dense (<1.50 good)")
    assert ticket["verdict"].startswith("contradicted; provisional: no budget evidence")
    assert ticket["p (Holm)"].endswith("(unadjusted, primary)") and ticket["n"] == "2"
    assert rows[("the ticket is non-inferior to dense (FID)", "round 1")]["role"] == "secondary"
    reinit = rows[("the ticket beats the reinit control (FID)", "round 3")]
    random = rows[("the ticket beats the random control (FID)", "round 3")]
    assert "FID ratio reinit/ticket (>1 good)" in reinit["effect"] and "(raw " in reinit["p (Holm)"]
    assert random["verdict"].startswith("inconclusive at this scale")  # seeds straddle the ticket
    sim = {r["claim"]: r for r in table}
    assert sim["upstream blocks agree more than downstream blocks (forward order)"]["verdict"].startswith("supported")
    assert sim["encoder blocks agree more than decoder blocks at the same resolution"]["verdict"].startswith(
        "inconclusive at this scale")
    # raw p 0.02 over a family of 7 secondary p-values: Holm demotes the magnitude claim to inconclusive
    assert sim["the two tickets agree beyond what each shares with its starting magnitudes"]["verdict"].startswith(
        "inconclusive at this scale")
    assert all(len(cell) <= 120 for r in table for cell in r.values())
    metrics = json.loads((root / "reports/metrics.json").read_text())
    assert [f["verdict"] for f in metrics["findings"]] == [r["verdict"].split(" [")[0] for r in table]
    assert metrics["findings"][0]["role"] == "primary" and metrics["findings"][0]["p_holm"] == metrics["findings"][0]["p"]


def test_tables_show_spread_intervals_and_extractor_hash(report):
    root, _ = report
    md = (root / "reports/summary.md").read_text()
    means = _md_table(md, "Mean over seeds")
    assert [(r["kind"], r["round"]) for r in means] == [("dense", "0"), ("ticket", "1"), ("ticket", "2"),
                                                        ("ticket", "3"), ("control: random", "3"),
                                                        ("control: reinit", "3")]
    dense = means[0]
    assert dense["FID mean ± sd"] == "50.25 ± 0.35"  # seeds 50.0 and 50.5
    lo, hi = (float(x) for x in dense["FID 95 % CI of mean"].strip("[]").split(","))
    assert lo < 50.0 and hi > 50.5
    assert all("±" in r["FID mean ± sd"] and "±" in r["KID mean ± sd"] for r in means)
    per_seed = _md_table(md, "Results per seed and round")
    assert len(per_seed) == 2 * 4 + 4  # two seeds x (dense + 3 rounds) + two controls x two seeds; stale ones left out
    for r in per_seed:
        m = json.loads((root / "artifacts" / _path(r)).read_text())
        fid, ci = r["FID [95 % CI]"].split(" ", 1)
        assert float(fid) == pytest.approx(m["fid"], abs=0.005)
        assert ci == f"[{m['fid_ci'][0]:.2f}, {m['fid_ci'][1]:.2f}]"
        assert r["FID∞ [95 % CI]"].startswith(f"{m['fid_inf']:.2f} [")
        assert r["extractor"] == "classifier 0123456789ab"
        assert float(r["sparsity (%)"]) == pytest.approx(100 * m["sparsity"], abs=0.005)
        assert int(r["params kept"].replace(",", "")) == m["params_kept"]
        assert float(r["MACs (MMACs)"]) == pytest.approx(m["macs"] / 1e6, abs=5e-4)
        assert float(r["KID"].split("±")[0]) == pytest.approx(m["kid_mean"], abs=5e-5)
        assert float(r["heldout loss ± SE"].split("±")[0]) == pytest.approx(m["heldout_loss"], abs=5e-6)
    assert f"weights sha256 {SHA}" in md and "on 500 generated samples (DDIM-50 sampler)" in md


def _path(row: dict) -> str:
    kind, seed, k = row["kind"], row["seed"], row["round"]
    if kind.startswith("control: "):
        return f"eval/controls/{kind.removeprefix('control: ')}/s{seed}/r{k}/metrics.json"
    return f"eval/s{seed}/r{k}/metrics.json"


def test_only_the_controls_params_ask_for_are_read(tmp_path):
    """An experiment's workspace holds the baseline's control files: with controls.kinds = [] (or a
    kind or round left out) they must not be read as this run's controls."""
    from pipeline.report.inputs import load_eval_table

    make_fake_results(tmp_path, with_optional=False, controls=True)
    kinds = lambda params: sorted(set(load_eval_table(params, tmp_path)["kind"]))
    assert kinds(_params()) == ["dense", "random", "reinit", "ticket"]
    none = parse_params({"budget": {"seeds": []}, "imp": {"seeds": list(SEEDS), "rounds": [{"k": k, "prev": k - 1} for k in ROUNDS]},
                         "controls": {"kinds": [], "rounds": [3]}})
    assert kinds(none) == ["dense", "ticket"]
    reinit_only = parse_params({"budget": {"seeds": []}, "imp": {"seeds": list(SEEDS), "rounds": [{"k": k, "prev": k - 1} for k in ROUNDS]},
                                "controls": {"kinds": ["reinit"], "rounds": [3]}})
    assert kinds(reinit_only) == ["dense", "reinit", "ticket"]
    other_round = parse_params({"budget": {"seeds": []}, "imp": {"seeds": list(SEEDS), "rounds": [{"k": k, "prev": k - 1} for k in ROUNDS]},
                                "controls": {"rounds": [1]}})
    assert kinds(other_round) == ["dense", "ticket"]


def test_curves_show_each_seed_the_mean_and_the_controls():
    from pipeline.report import figures as F
    from pipeline.report.inputs import load_eval_table
    from pipeline.report.tables import seed_stats

    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        make_fake_results(Path(tmp), with_optional=False, controls=True)
        df = load_eval_table(_params(), Path(tmp))
    fig = F.plot_fid_vs_sparsity(df, seed_stats(df), 10.0)
    ax = fig.axes[0]
    lines = {ln.get_gid() or ln.get_label(): ln for ln in ax.get_lines()}
    assert list(lines["seed 1"].get_ydata()) == [_fid(1, k) for k in (0, *ROUNDS)]
    assert list(lines["seed 2"].get_ydata()) == [_fid(2, k) for k in (0, *ROUNDS)]
    # the geometric mean over seeds (FIDs are averaged on the log scale)
    assert list(lines["mean over 2 seed(s)"].get_ydata()) == pytest.approx([math.sqrt(_fid(1, k) * _fid(2, k))
                                                                            for k in (0, *ROUNDS)])
    assert lines["seed 1"].get_linewidth() < lines["mean over 2 seed(s)"].get_linewidth()
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "mean: 95 % CI of mean" in labels  # the band
    assert labels.count("each of 2 seed(s)") == 1  # one entry for all seeds, not one per seed
    assert not any("control" in label for label in labels)  # the controls have their own panel
    controls = fig.axes[2]
    markers = {c.get_label() for c in controls.containers}  # the controls' mean with error bars
    assert {"reinit control (mean, 95 % CI)", "random control (mean, 95 % CI)", "ticket (mean, 95 % CI)"} <= markers
    assert max(controls.get_ylim()) > 91.0 > max(ax.get_ylim())  # the reinit control's FID does not squash panel 1


def test_frontier_follows_the_fixed_sequence_of_ratios_and_convergence_is_only_described(tmp_path):
    from pipeline.report import findings as FD
    from pipeline.report import frontier as FR
    from pipeline.report.inputs import load_eval_table
    from pipeline.report.text import frontier_sentence

    make_fake_results(tmp_path, with_optional=False)

    def claim(params, df, budget=None):
        runs = FR.load_paired(params, df, tmp_path)
        fr = FR.frontier(params, df, runs)
        return FD.primary_finding_row(params, df, runs, budget), fr

    params = _params(margin=0.8, primary_sparsity=0.909)  # FID ratio bound 1.8: every round (<= 1.61) passes
    df = load_eval_table(params, tmp_path)
    row, fr = claim(params, df)
    assert row["verdict"] == "supported; provisional: no budget evidence"
    assert row["read_at"].startswith("round 3 (90.9 % prunable, 75.7 % of all")
    assert fr.over_seeds.ratio and fr.over_seeds.margin == pytest.approx(math.log(1.8))
    assert fr.over_seeds.censored and "≥ 90.9 % (last round studied, not bracketed)" in frontier_sentence(fr.over_seeds)
    assert fr.fid_margin == pytest.approx(0.8 * 50.25)
    # a non-inferior round after a failed one must not count: round 2 fails, round 3 would pass alone
    moved = df.copy()
    moved.loc[moved["round"] == 2, "fid"] += 45.0
    _, fr = claim(params, moved)
    assert (fr.over_seeds.round, fr.over_seeds.stopped_at) == (1, 2) and fr.over_seeds.bracketed
    assert "upper bound of the FID ratio" in frontier_sentence(fr.over_seeds)
    # a dense baseline still learning is described, but qualifies nothing: the budget check does
    for seed in SEEDS:
        path = tmp_path / f"eval/s{seed}/r0/paired.json"
        data = json.loads(path.read_text())
        data["heldout_curve"] = {step: [v + 0.01 * (2 - i) for v in values]
                                 for i, (step, values) in enumerate(data["heldout_curve"].items())}
        path.write_text(json.dumps(data))
    stable = {"verdict_T": "supported", "verdict_2T": "supported", "stable": True}
    row, fr = claim(params, df, stable)
    assert not fr.converged.converged and not fr.over_seeds.provisional
    assert row["verdict"] == "supported; budget-stable (T and 2T agree)"
    changed = dict(stable, verdict_2T="inconclusive at this scale", stable=False)
    assert claim(params, df, changed)[0]["verdict"] == "supported; provisional: verdict changes at 2T"
    # no round at 90 % ± 0.5 % (the fake rounds are 55.0, 79.8, 90.9 %): not measured, the nearest named
    row, _ = claim(_params(margin=0.8), df)
    assert row["verdict"] == "not measured" and row["role"] == "primary"
    assert row["read_at"] == "no round at 90.0 % ± 0.5 % (nearest: round 3 at 90.9 %)"


def test_heldout_by_t_csv_is_tidy_and_matches_metrics(report):
    root, _ = report
    csv = pd.read_csv(root / "reports/heldout_by_t.csv")
    assert list(csv.columns) == ["kind", "seed", "round", "sparsity", "bucket", "t_lo", "t_hi", "loss"]
    assert set(csv["kind"]) == {"dense", "ticket", "reinit", "random"}
    assert len(csv) == (2 * 4 + 2 * 2) * (len(EDGES) - 1)
    m = json.loads((root / "artifacts/eval/s2/r3/metrics.json").read_text())
    rows = csv[(csv["kind"] == "ticket") & (csv["seed"] == 2) & (csv["round"] == 3)].sort_values("bucket")
    assert rows["loss"].tolist() == pytest.approx(m["heldout_loss_by_t"])
    assert rows["t_lo"].tolist() == EDGES[:-1] and rows["t_hi"].tolist() == EDGES[1:]

    from pipeline.report.figures import heldout_ratio
    ratio = heldout_ratio(csv).set_index(["kind", "round", "bucket"])["ratio"]
    assert ratio.loc[("ticket", 3, 0)] == pytest.approx(1.3)  # (1 + 0.1 k) relative to dense
    assert ratio.loc[("reinit", 3, 2)] == pytest.approx(1.6)


def test_heldout_by_t_keeps_an_empty_bucket_as_missing():
    """Fewer held-out items than buckets leaves a bucket empty (metrics.json holds null there)."""
    from pipeline.report.figures import heldout_ratio
    from pipeline.report.inputs import heldout_by_t_table

    rows = pd.DataFrame([{"kind": kind, "seed": 1, "round": k, "sparsity": 0.5 * k,
                          "heldout_loss_by_t": [0.2 * (1 + k), None, 0.1 * (1 + k)], "heldout_t_edges": [0, 10, 20, 30]}
                         for kind, k in (("dense", 0), ("ticket", 1))])
    table = heldout_by_t_table(rows)
    assert len(table) == 6 and table.loc[table["bucket"] == 1, "loss"].isna().all()
    ratio = heldout_ratio(table).set_index(["kind", "round", "bucket"])["ratio"]
    assert ratio.loc[("ticket", 1, 0)] == pytest.approx(2.0) and ratio.loc[("ticket", 1, 2)] == pytest.approx(2.0)


def test_report_is_byte_stable(report, tmp_path):
    root, written = report
    again = build_report(_params(margin=0.5, primary_sparsity=0.909), out_dir=tmp_path / "reports",
                         artifacts_root=root / "artifacts")
    for a, b in zip(written, again):
        assert a.name == b.name and a.read_bytes() == b.read_bytes(), a.name


def test_csv_and_metrics(report):
    root, _ = report
    out = root / "reports"
    csv = pd.read_csv(out / "fid_vs_sparsity.csv")
    main = csv[(csv["seed"] == 1) & csv["kind"].isin(["dense", "ticket"])].sort_values("round")
    assert main["round"].tolist() == [0, *ROUNDS]  # stale r7 left out
    assert main["fid"].tolist() == [FIDS[k] for k in (0, *ROUNDS)]
    assert (main["schedule"] == "uniform").all()
    ctrl = csv[csv["kind"] == "reinit"].sort_values("seed")
    assert ctrl["fid"].tolist() == [91.0, 92.0] and ctrl["seed"].tolist() == [1, 2]  # stale seed 9 left out
    assert np.allclose(csv["remaining_pct"], 100 * (1 - csv["sparsity"]))
    assert np.allclose(csv["fid_ci_high"] - csv["fid_ci_low"], 2.0)

    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["dense_fid"] == 50.25 and metrics["final_fid"] == 80.375
    assert metrics["final_sparsity"] == pytest.approx(1 - 0.45 ** 3)
    assert metrics["frontier"]["round"] == 2 and metrics["frontier"]["status"] == "bracketed"
    assert metrics["dense_converged"] is True
    assert metrics["feature_extractor"] == "classifier" and metrics["extractor_sha256"] == SHA
    md = (out / "summary.md").read_text()
    assert "Upstream layers agree more (fake)." in md
    assert "Seed 1: sparsest non-inferior ticket: round 2 at 79.8 % prunable" in md and "not bracketed" not in md


def test_html_is_self_contained(report):
    root, written = report
    out = root / "reports"
    page = (out / "index.html").read_text()
    assert "http" not in page.lower()
    assert "<script" not in page and "<link" not in page
    n_png = sum(p.suffix == ".png" for p in written)
    assert page.count("data:image/png;base64,") == n_png == 10
    assert page.index("<h2>Findings</h2>") < page.index("<h2>Methods</h2>")
    assert "Upstream layers agree more (fake)." in page


def test_png_data_uri_avoids_http_by_chance():
    import base64
    # PNG-like bytes whose base64 spells 'http' (case-insensitively) after the header
    body = b"\x89PNG\r\n\x1a\n" + b"\x00" * 25
    spell = base64.b64decode("aHTTpAAA")  # 6 bytes whose base64 starts with 'aHTTp'
    raw = body + b"\x00\x00\x00" + spell * 50
    assert "http" in base64.b64encode(raw).decode().lower()
    uri = png_data_uri(raw)
    assert "http" not in uri.lower()
    decoded = base64.b64decode(uri.split(",", 1)[1])
    assert decoded[:33] == raw[:33] and decoded.endswith(raw[33:])  # only a chunk was inserted


def test_missing_metrics_names_the_file_and_stage(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    make_fake_results(Path("artifacts"), with_optional=False)
    os.remove("artifacts/eval/s1/r2/metrics.json")
    with pytest.raises(ConfigError, match=r"artifacts/eval/s1/r2/metrics.json: missing; .*stage 'eval' \(seed 1, round 2\)"):
        build_report(_params())


def test_stage_entry_without_optional_inputs(tmp_path):
    """`python -m stages.report` in a run without similarity/rates and no ticket within tolerance."""
    pytest.importorskip("pipeline.similarity.agreement")
    make_fake_results(tmp_path / "artifacts", with_optional=False)
    (tmp_path / "params.yaml").write_text(json.dumps(_params(margin=0.01, primary_sparsity=0.909).model_dump(mode="json")))
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    proc = subprocess.run([sys.executable, "-m", "stages.report"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "reports"
    skipped = {"similarity_heatmap.png", "similarity_depth.png", "layer_rates.png"}  # the claims figure says there are none
    assert sorted(p.name for p in out.iterdir()) == sorted(set(EXPECTED) - skipped)
    md = (out / "summary.md").read_text()
    assert "no round is non-inferior" in md
    assert "similarity.csv not found" in md and "rates.json not found" in md
    assert json.loads((out / "metrics.json").read_text())["frontier"]["status"] == "none"
    assert (out / "index.html").read_text().count("data:image/png;base64,") == 7
    rows = {r["claim"]: r for r in _md_table(md, "Findings")}
    assert rows["upstream blocks agree more than downstream blocks (forward order)"]["verdict"] == "not measured"
    ticket = next(r for r in _md_table(md, "Findings") if r["role"] == "primary")
    # every IMP seed is evaluated: two seeds; a FID ratio ~1.6 is far beyond the margin 1.01
    assert ticket["verdict"].startswith("contradicted; provisional: no budget evidence") and ticket["n"] == "2"
    primary = json.loads((out / "metrics.json").read_text())["findings"][0]
    assert "2 seeds: SE² = between-seed variance / n + mean cross-seed" in primary["test"]


# ------------------------------------------------------------------------------------------------
# compare
# ------------------------------------------------------------------------------------------------
def _rev(rev: str, name, schedule: str, fids: list[float], rewind: str = "checkpoint", seeds=(1,), sha: str = SHA,
         controls: bool = False, macs_scale: float = 1.0, frontier: dict | None = None) -> dict:
    """One `dvc exp show` entry; `frontier`: seed -> (round, status) of its report's sparsest
    non-inferior ticket (default: round 1, bracketed)."""
    def m(s, k, f, **kw):
        out = _metrics(s, k, schedule if k else "uniform", fid=f + s, extractor_sha256=sha, **kw)
        out["macs"] = int(out["macs"] * (macs_scale if k else 1.0))
        return {"data": out}

    metrics = {f"artifacts/eval/s{s}/r{k}/metrics.json": m(s, k, f) for s in seeds for k, f in enumerate(fids)}
    if controls:  # controls must never be read as main rounds
        metrics.update({f"artifacts/eval/controls/reinit/s{s}/r{len(fids) - 1}/metrics.json":
                        m(s, len(fids) - 1, 500.0, kind="reinit") for s in seeds})
    last = len(fids) - 1
    per_seed = {str(sd): {"round": k, "sparsity": 1 - 0.45 ** k, "global_sparsity": (1 - 0.45 ** k) * 10 / 12,
                          "status": status, "stopped_at": None if status == "censored" else k + 1,
                          "last_sparsity": 1 - 0.45 ** last}
                for sd, (k, status) in ((sd, (frontier or {}).get(sd, (1, "bracketed"))) for sd in seeds)}
    metrics["reports/metrics.json"] = {"data": {"dense_fid": fids[0], "dense_converged": True,
                                                "frontier": {"per_seed": per_seed, "provisional": False}}}
    return {"rev": rev, "name": name, "data": {
        "rev": rev, "timestamp": None, "deps": {}, "outs": {}, "meta": {}, "metrics": metrics,
        "params": {"params.yaml": {"data": {"sparsity": {"schedule": schedule}, "rewind": {"mode": rewind},
                                            "report": {"margin": 0.1}}}}},
        "error": None, "experiments": None}


def _exp_show(lw_sha: str = SHA) -> list[dict]:
    """The shape of DVC 3.67's `dvc exp show --json` (captured from a throwaway repo)."""
    workspace = _rev("workspace", None, "global", [50, 55, 70])
    base = _rev("a" * 40, "main", "uniform", [50, 58, 63, 75], seeds=(1, 2), controls=True)
    glob = _rev("b" * 40, "glob", "global", [50, 55, 70])  # the workspace after `dvc exp run -n glob`
    lw = _rev("c" * 40, "lw", "layerwise", [50, 52, 56, 59], rewind="init", sha=lw_sha, frontier={1: (3, "censored")})
    broken = {"rev": "d" * 40, "name": "bad", "data": {}, "error": {"type": "X", "msg": "boom"}, "experiments": None}
    base["experiments"] = [{"revs": [glob], "executor": None, "name": "glob"},
                           {"revs": [lw], "executor": None, "name": "lw"},
                           {"revs": [broken], "executor": None, "name": "bad"}]
    return [workspace, base]


def test_parse_exp_show():
    from pipeline.report.compare import main_rows, parse_exp_show, summary_table

    rows, exps, notes = parse_exp_show(_exp_show())
    assert exps["experiment"].tolist() == ["glob", "lw", "main"]  # workspace == glob, shown once
    assert exps.set_index("experiment")["schedule"].to_dict() == {"glob": "global", "lw": "layerwise", "main": "uniform"}
    assert exps.set_index("experiment").loc["lw", "rewind"] == "init"
    assert any("workspace" in n and "glob" in n for n in notes)
    assert any(n.startswith("bad:") and "boom" in n for n in notes)
    lw = rows[rows["experiment"] == "lw"].sort_values("round")
    assert lw["round"].tolist() == [0, 1, 2, 3] and lw["fid"].tolist() == [51, 53, 57, 60]
    main = rows[rows["experiment"] == "main"]
    assert len(main_rows(main)) == 8  # 2 seeds x 4 rounds
    ctrl = main[main["kind"] == "reinit"]
    assert sorted(ctrl["seed"]) == [1, 2] and (ctrl["round"] == 3).all() and (ctrl["fid"] > 500).all()

    summary = summary_table(rows, exps).set_index("experiment")
    assert summary.loc["main", "dense_fid"] == 51.5  # mean over seeds 1 and 2; the controls' FID 500 stays out
    assert summary.loc["main", "final_fid"] == 76.5
    assert summary.loc["main", "final_fid_sd"] == pytest.approx(np.std([76, 77], ddof=1))
    assert summary.loc["main", "final_fid_low"] < 76 and summary.loc["main", "final_fid_high"] > 77
    # each run's report: main and glob stop after round 1, lw passes every round (censored at round 3)
    assert summary.index.tolist()[0] == "lw"  # ranked first: the sparsest non-inferior ticket
    assert summary.loc["main", "frontier_sparsity_mean"] == pytest.approx(0.55)
    assert summary.loc["lw", "frontier_sparsity_mean"] == pytest.approx(1 - 0.45 ** 3)
    assert summary.loc["lw", "frontier_sparsity_lower_bound"] and not summary.loc["main", "frontier_sparsity_lower_bound"]


def test_compare_outputs_from_captured_json(tmp_path, monkeypatch):
    import pipeline.report.compare as C

    monkeypatch.setattr(C, "exp_show_json", lambda repo: _exp_show())
    written = C.compare(tmp_path / "cmp", tmp_path)
    assert {p.name for p in written} == {"compare_fid_vs_sparsity.png", "compare_fid_vs_macs.png", "compare.csv",
                                         "compare_rounds.csv", "compare_findings.json", "compare.md", "compare_paired.csv"}
    md = (tmp_path / "cmp/compare.md").read_text()
    for name in ("glob", "lw", "main"):
        assert f"| {name} |" in md
    assert "workspace" in md  # named in the notes as identical to glob
    assert "76.50 ± 0.71 [" in md  # main's final FID: mean ± sd over seeds [interval]
    csv = pd.read_csv(tmp_path / "cmp/compare.csv")
    assert set(csv["schedule"]) == {"global", "layerwise", "uniform"}
    findings = json.loads((tmp_path / "cmp/compare_findings.json").read_text())
    assert len(findings) == 1
    f = findings[0]
    # lw ran seed 1 only: one paired seed is not enough to decide
    assert (f["layerwise"], f["uniform"], f["n_paired"]) == ("lw", "main", 1)
    assert f["effect"] == pytest.approx((1 - 0.45 ** 3) - 0.55) and f["verdict"] == "inconclusive at this scale"
    assert f"| {f['verdict']} |" in md and "layerwise finds sparser or cheaper tickets at non-inferior FID" in md
    assert "≥ 90.89 [" in md  # lw's censored frontier reads as a lower bound


def test_compare_plots_each_seed_and_the_mean(monkeypatch, tmp_path):
    import pipeline.report.compare as C

    rows, exps, _ = C.parse_exp_show(_exp_show())
    summary = C.summary_table(rows, exps)
    ax = C.plot_compare(rows, summary, "remaining_pct").axes[0]
    lines = {ln.get_label(): ln for ln in ax.get_lines()}
    assert list(lines["main seed 1"].get_ydata()) == [51, 59, 64, 76]
    assert list(lines["main seed 2"].get_ydata()) == [52, 60, 65, 77]
    mean = next(ln for label, ln in lines.items() if label.startswith("mean: main"))
    assert list(mean.get_ydata()) == [51.5, 59.5, 64.5, 76.5]
    assert len(ax.collections) >= 3  # one interval band per experiment
    assert not any("reinit" in label for label in lines)


def test_compare_refuses_to_mix_extractors(tmp_path, monkeypatch):
    import pipeline.report.compare as C

    other = "f" * 64
    monkeypatch.setattr(C, "exp_show_json", lambda repo: _exp_show(lw_sha=other))
    with pytest.raises(ConfigError, match=r"different FID extractors .*ffffffffffff: lw.*--split-extractors"):
        C.compare(tmp_path / "cmp", tmp_path)
    assert not (tmp_path / "cmp").exists()  # nothing half-written

    written = C.compare(tmp_path / "cmp", tmp_path, split_extractors=True)
    names = {p.name for p in written}
    assert {"compare_fid_vs_sparsity-0123456789ab.png", "compare_fid_vs_sparsity-ffffffffffff.png",
            "compare-0123456789ab.csv", "compare-ffffffffffff.csv"} <= names
    apart = pd.read_csv(tmp_path / "cmp/compare-ffffffffffff.csv")
    assert apart["experiment"].tolist() == ["lw"]
    md = (tmp_path / "cmp/compare.md").read_text()
    assert md.count("## Runs measured with extractor classifier") == 2
    # lw's only uniform peer was measured with another extractor: no verdict across extractors
    assert json.loads((tmp_path / "cmp/compare_findings.json").read_text())[0]["verdict"] == "not measured"

    mixed = _exp_show()
    mixed[1]["data"]["metrics"]["artifacts/eval/s2/r1/metrics.json"]["data"]["extractor_sha256"] = other
    monkeypatch.setattr(C, "exp_show_json", lambda repo: mixed)
    with pytest.raises(ConfigError, match="experiment main: its metrics files name 2 different FID extractors"):
        C.compare(tmp_path / "cmp2", tmp_path, split_extractors=True)


def test_cli_report_compare_refuses_or_splits(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    import pipeline.report.compare as C
    from pipeline.app.cli import app

    monkeypatch.setattr(C, "exp_show_json", lambda repo: _exp_show(lw_sha="f" * 64))
    monkeypatch.chdir(tmp_path)
    refused = CliRunner().invoke(app, ["report", "compare", "--out", "cmp"])
    assert refused.exit_code == 2 and "different FID extractors" in refused.output
    split = CliRunner().invoke(app, ["report", "compare", "--out", "cmp", "--split-extractors"])
    assert split.exit_code == 0, split.output
    assert "cmp/compare_fid_vs_sparsity-ffffffffffff.png" in split.output


@pytest.mark.parametrize("lw, uniform, expected", [
    ({1: (3, "bracketed"), 2: (3, "bracketed")}, {1: (1, "bracketed"), 2: (1, "bracketed")}, "supported"),
    ({1: (1, "bracketed"), 2: (1, "bracketed")}, {1: (3, "bracketed"), 2: (3, "bracketed")}, "contradicted"),
    ({1: (3, "bracketed"), 2: (1, "bracketed")}, {1: (1, "bracketed"), 2: (3, "bracketed")}, "inconclusive at this scale"),
    ({1: (3, "censored"), 2: (3, "censored")}, {1: (3, "censored"), 2: (3, "censored")}, "inconclusive at this scale"),
])
def test_layerwise_verdict_from_experiments_is_decided_on_the_frontier(lw, uniform, expected):
    from pipeline.report.compare import layerwise_findings, parse_exp_show

    base = _rev("a" * 40, "main", "uniform", [50, 58, 63, 75], seeds=(1, 2), frontier=uniform)
    run = _rev("c" * 40, "lw", "layerwise", [50, 52, 56, 74], seeds=(1, 2), frontier=lw)
    base["experiments"] = [{"revs": [run], "executor": None, "name": "lw"}]
    rows, exps, _ = parse_exp_show([base])
    [f] = layerwise_findings(rows, exps)
    assert f["verdict"] == expected and f["n_paired"] == 2
    if all(v[1] == "censored" for v in {**lw, **uniform}.values()):
        assert "both hit the ceiling" in f["reason"]


def test_compare_outside_dvc_repo(tmp_path):
    from pipeline.report.compare import compare

    with pytest.raises(ConfigError, match="not inside a DVC repository"):
        compare(tmp_path / "out", tmp_path)


@pytest.mark.slow
def test_compare_on_a_real_dvc_repo(tmp_path):
    """Two DVC experiments in a throwaway repo, read back through `dvc exp show --json`."""
    from pipeline.report.compare import compare

    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@t", DVC_NO_ANALYTICS="1")

    def sh(*cmd):
        proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    (tmp_path / "params.yaml").write_text("sparsity:\n  schedule: uniform\nrewind:\n  mode: checkpoint\n"
                                          "imp:\n  rounds: [{k: 1, prev: 0}, {k: 2, prev: 1}]\n")
    (tmp_path / "run.py").write_text(
        "import json, os, sys, yaml\n"
        "p = yaml.safe_load(open('params.yaml')); k = int(sys.argv[1])\n"
        "d = f'artifacts/eval/s1/r{k}'; os.makedirs(d, exist_ok=True)\n"
        "bump = {'uniform': 0, 'layerwise': 5, 'global': 9}[p['sparsity']['schedule']] if k else 0\n"
        "json.dump({'seed': 1, 'round': k, 'schedule': p['sparsity']['schedule'], 'sparsity': 1 - 0.5 ** k,\n"
        "           'fid': 40 + 10 * k + bump, 'kid_mean': 0.01, 'macs': 10**6 // (k + 1), 'storage_bytes': 1000,\n"
        "           'feature_extractor': 'classifier', 'num_samples': 500}, open(d + '/metrics.json', 'w'))\n")
    py = shlex.quote(sys.executable)
    metric = lambda path: [{path: {"cache": False}}]
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": {
        "dense": {"cmd": f"{py} run.py 0", "deps": ["run.py"], "metrics": metric("artifacts/eval/s1/r0/metrics.json")},
        "eval": {"foreach": "${imp.rounds}", "do": {
            "cmd": f"{py} run.py ${{item.k}}", "deps": ["run.py"], "params": ["sparsity.schedule", "rewind.mode"],
            "metrics": metric("artifacts/eval/s1/r${item.k}/metrics.json")}}}}))
    sh("git", "init", "-q")
    sh(sys.executable, "-m", "dvc", "init", "-q")
    sh(sys.executable, "-m", "dvc", "repro", "-q")
    sh("git", "add", "-A")
    sh("git", "commit", "-qm", "baseline")
    sh(sys.executable, "-m", "dvc", "exp", "run", "-q", "-n", "lw", "-S", "sparsity.schedule=layerwise")
    sh(sys.executable, "-m", "dvc", "exp", "run", "-q", "-n", "gl", "-S", "sparsity.schedule=global",
       "-S", "rewind.mode=init")

    compare(tmp_path / "reports/compare", tmp_path)
    csv = pd.read_csv(tmp_path / "reports/compare/compare.csv").set_index("experiment")
    assert set(csv.index) >= {"lw", "gl"}
    assert csv.loc["lw", "schedule"] == "layerwise" and csv.loc["gl", "rewind"] == "init"
    assert csv.loc["lw", "final_fid"] == 65 and csv.loc["gl", "final_fid"] == 69
    assert csv.loc["lw", "dense_fid"] == 40
    rounds = pd.read_csv(tmp_path / "reports/compare/compare_rounds.csv")
    assert sorted(rounds[rounds["experiment"] == "gl"]["fid"]) == [40, 59, 69]


def test_similarity_findings_follow_the_claims_interval():
    from pipeline.report.findings import similarity_findings

    as_dict = similarity_findings({"claims": CLAIMS}, "kappa")
    assert similarity_findings({"claims": [dict(v, name=k) for k, v in CLAIMS.items()]}, "kappa") == as_dict
    assert [r["verdict"] for r in as_dict] == ["supported", "inconclusive at this scale", "contradicted"]
    shifted = {k: dict(v, ci=[v["ci"][0] + 0.12, v["ci"][1] + 0.12]) for k, v in CLAIMS.items()}
    assert [r["verdict"] for r in similarity_findings({"claims": shifted}, "kappa")] == ["supported"] * 3
    assert similarity_findings(None, "kappa")[0]["verdict"] == "not measured"


def test_mean_fid_intervals_are_geometric_and_never_cut_at_0():
    """A mean FID over 3 seeds with a large spread: a symmetric t-interval would go below 0; on the log
    scale the interval stays positive without a cut."""
    from pipeline.report.tables import seed_stats

    df = pd.DataFrame({"kind": "ticket", "round": 5, "main": True, "seed": [1, 2, 3], "fid": [30.0, 60.0, 200.0],
                       "fid_std": 2.0, "fid_inf": [29.0, 59.0, 199.0], "fid_inf_low": [27.0, 57.0, 197.0],
                       "fid_inf_high": [31.0, 61.0, 201.0], "sparsity": 0.99, "remaining_pct": 1.0, "kid_mean": 0.1,
                       "kid_std": 0.01, "heldout_loss": 0.05, "macs": 1e5, "storage_bytes": 1e5,
                       "params_kept": 1e3, "params_total": 1e5, "feature_extractor": "classifier",
                       "extractor_sha256": "ab" * 32})
    stats = seed_stats(df).iloc[0]
    assert stats["fid"] == pytest.approx((30.0 * 60.0 * 200.0) ** (1 / 3))
    assert 0.0 < stats["fid_low"] < 30.0 and stats["fid_high"] > 200.0 and 0.0 < stats["fid_inf_low"]
    assert "geometric mean" in stats["fid_rule"] and "truncated" not in stats["fid_rule"]
    from pipeline.report.compare import experiment_curves  # compare's own curves (arithmetic, cut at 0)

    curves = experiment_curves(df.assign(experiment="main"))
    assert curves["fid_low"].iloc[0] == 0.0 and curves["fid_high"].iloc[0] > 200.0


def _tables(folder) -> dict:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("compare*")) if p.suffix in (".csv", ".md", ".json")}


def test_compare_rebuilds_from_committed_runs_byte_identically_and_refuses_fewer(tmp_path, monkeypatch):
    import shutil

    import pipeline.report.compare as C
    from pipeline.core.config import ConfigError

    monkeypatch.setattr(C, "exp_show_json", lambda repo: _exp_show())
    out = tmp_path / "cmp"
    C.compare(out, tmp_path)  # with the DVC experiments: writes runs/ beside the report
    assert (out / "runs/index.json").exists() and (out / "runs/lw/rows.csv").exists()
    live = _tables(out)

    # a fresh clone: the committed report and runs, no experiments (dvc exp show fails or shows none)
    clone = tmp_path / "clone/cmp"
    shutil.copytree(out, clone)

    def no_dvc(repo):
        raise ConfigError("not inside a DVC repository")

    monkeypatch.setattr(C, "exp_show_json", no_dvc)
    for _ in range(2):
        C.compare(clone, tmp_path)
        assert _tables(clone) == live
    monkeypatch.setattr(C, "exp_show_json", lambda repo: [])  # a DVC repo with no experiments and no metrics
    C.compare(clone, tmp_path)
    assert _tables(clone) == live

    # fewer runs than the report was built from: one-line refusal, nothing changed; --force overwrites
    shutil.rmtree(clone / "runs/glob")
    index = json.loads((clone / "runs/index.json").read_text())
    (clone / "runs/index.json").write_text(json.dumps({**index, "runs": [r for r in index["runs"] if r != "glob"]}))
    with pytest.raises(ConfigError, match=r"built from 3 runs and this build has 2; pass --force") as err:
        C.compare(clone, tmp_path)
    assert "\n" not in str(err.value) and _tables(clone) == live
    C.compare(clone, tmp_path, force=True)
    assert len(pd.read_csv(clone / "compare.csv")) == 2 and _tables(clone) != live
