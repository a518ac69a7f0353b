"""The report page top first: title, answer, FID figure, paper table, findings, caveats as numbered notes,
methods once, per-seed tables last; and the figures behind it."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.report.build import build_report

from test_report import ROUNDS, SEEDS, _fid, _params, make_fake_results


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    pytest.importorskip("pipeline.similarity.agreement")
    root = tmp_path_factory.mktemp("page")
    make_fake_results(root / "artifacts", controls=True)
    build_report(_params(margin=0.5), out_dir=root / "reports", artifacts_root=root / "artifacts")
    return root / "reports"


def test_markdown_opens_with_title_answer_figure_and_paper_table(page):
    md = (page / "summary.md").read_text()
    title = md.splitlines()[0]
    assert "mnist5k 12×12" in title and "k-parameter U-Net" in title and "uniform schedule" in title
    answer, figure, table, findings = (md.index(s) for s in ("**Not measured: no round at 90.0 %", "](fid_vs_sparsity.png)",
                                                              "| round | sparsity | uniform FID", "## Findings"))
    assert answer < figure < table < findings
    assert md.count("](fid_vs_sparsity.png)") == 1  # not repeated among the other figures
    sections = [ln[3:] for ln in md.splitlines() if ln.startswith("## ")]
    assert sections[0] == "Findings" and sections.count("Methods") == 1
    assert sections.index("Methods") < sections.index("Results per seed and round")
    assert sections[-2:] == ["Results per seed and round", "Ticket sparsity per seed (from mask.json)"]
    notes = md.split("## Findings", 1)[1].split("\n## ", 1)[0]
    table, listed = notes.split("Notes:", 1)
    assert "[1]" in table and "\n1. " in listed and "[1]" not in listed  # mark [k] is item k of the numbered notes
    assert "(descriptive: no verdict uses it)" in listed
    assert "exact sign-flip test cannot go below p = 2/2^2" in notes or "exact" in notes
    assert "One primary claim, named before the run" not in notes  # a rule of the methods, stated there once
    assert md.count("One primary claim, named before the run") == 1


def test_paper_table_has_every_method_per_round(page):
    md = (page / "summary.md").read_text()
    rows = [ln.strip("|").split("|") for ln in md.split("| round | sparsity |", 1)[1].split("\n\n", 1)[0].splitlines()[2:]]
    rows = [[c.strip() for c in r] for r in rows]
    assert [r[0] for r in rows] == ["0", *map(str, ROUNDS)] and rows[0][1] == "dense"
    mean = lambda k: sum(_fid(s, k) for s in SEEDS) / len(SEEDS)
    for r, k in zip(rows, (0, *ROUNDS)):
        assert float(r[2].split(" [")[0]) == pytest.approx(mean(k), abs=0.05)
    last = rows[-1]
    assert last[1] == "90.9 %" and last[3] != "–" and last[4].startswith("91.5 [")  # random, then reinit control
    assert rows[0][3] == rows[0][4] == "–"  # no control at round 0


def test_html_first_screen_order_and_headline(page):
    html = (page / "index.html").read_text()
    i_answer, i_img, i_table, i_findings = (html.index(s) for s in ('<p class="answer">', "<img", "<th>round</th>",
                                                                     "<h2>Findings</h2>"))
    assert i_answer < i_img < i_table < i_findings
    assert html.index("<h2>Methods</h2>") > i_findings
    head = json.loads((page / "headline.json").read_text())
    # the fake rounds (55.0, 79.8, 90.9 %) miss 90 % ± 0.5 %: the primary claim is not measured, and says so
    assert head["verdict"] == "not measured" and head["effect"] is None and head["fid_dense"] == 50.25


def test_fid_figure_has_delta_panel_with_margin_and_legends_outside(page):
    from pipeline.report import figures as F
    from pipeline.report import frontier as FR
    from pipeline.report.inputs import load_eval_table
    from pipeline.report.tables import seed_stats

    art = page.parent / "artifacts"
    params = _params(margin=0.5)
    df = load_eval_table(params, art)
    runs = FR.load_paired(params, df, art)
    fr = FR.frontier(params, df, runs)
    fig = F.plot_fid_vs_sparsity(df, seed_stats(df, runs), fr.over_seeds.margin, None, fr.deltas)
    ax_fid, ax_d, ax_c = fig.axes
    mean = {ln.get_label(): ln for ln in ax_d.get_lines()}["mean ΔFID"]
    assert list(mean.get_ydata()) == pytest.approx([fr.deltas[k].estimate for k in ROUNDS])
    assert any(abs(ln.get_ydata()[0] - fr.over_seeds.margin) < 1e-9 for ln in ax_d.get_lines() if len(ln.get_ydata()) == 2)
    fig.canvas.draw()
    for ax in fig.axes:  # every legend sits below its axes, never over the data
        assert ax.get_legend().get_window_extent().y1 <= ax.get_window_extent().y0 + 1


def test_convergence_figure_shows_paired_steps_and_a_sensible_title():
    import numpy as np

    from pipeline.report import figures as F
    from pipeline.stats.convergence import dense_convergence_over_seeds

    items = np.linspace(0.02, 0.06, 64)
    learning = {s: {50: items + 0.01, 75: items + 0.005, 100: items + 0.001 * np.cos(np.arange(64))} for s in (1, 2, 3)}
    conv = dense_convergence_over_seeds(learning, 0.01)
    fig = F.plot_convergence(conv, learning)
    title = fig.axes[0].get_title()
    assert "still improving in 3 of 3 seeds" in title and "0 of" not in title
    steps = F.paired_steps(learning[1])
    assert [(a, b) for a, b, *_ in steps] == [(50, 75), (75, 100)]
    assert steps[0][2] == pytest.approx(0.005)  # the paired per-item improvement, not the loss level
    c = conv.seed(1)
    assert steps[-1][4] == pytest.approx(c.high) and steps[-1][3] == pytest.approx(c.low)  # the verdict's interval
    flat = {s: {50: items, 100: items + 1e-9 * np.sin(np.arange(64))} for s in (1, 2)}
    ok = F.plot_convergence(dense_convergence_over_seeds(flat, 0.01), flat)
    assert ok.axes[0].get_title().startswith("Dense baseline converged in all 2 seeds")


def test_no_layer_figure_when_every_layer_has_the_same_sparsity(tmp_path):
    pytest.importorskip("pipeline.similarity.agreement")
    from pipeline.report.figures import layers_uniform

    make_fake_results(tmp_path / "artifacts", with_optional=False)
    for path in (tmp_path / "artifacts/imp").glob("s*/r*/prune/mask.json"):
        mask = json.loads(path.read_text())
        for layer in mask["layers"].values():
            layer["sparsity"] = mask["sparsity"]
        path.write_text(json.dumps(mask))
    assert layers_uniform(mask) and not layers_uniform({"layers": {"a": {"sparsity": 0.5}, "b": {"sparsity": 0.6}}})
    out = tmp_path / "reports"
    out.mkdir()
    (out / "layer_sparsity.png").write_bytes(b"stale")
    written = build_report(_params(), out_dir=out, artifacts_root=tmp_path / "artifacts")
    assert "layer_sparsity.png" not in {p.name for p in written} and not (out / "layer_sparsity.png").exists()
    assert "No per-layer sparsity figure: every layer" in (out / "summary.md").read_text()


def test_sample_grid_has_a_column_per_round_and_per_control(page):
    from PIL import Image

    from pipeline.report.build import _sample_panels
    from pipeline.report.inputs import load_eval_table

    art = page.parent / "artifacts"
    params = _params()
    panels, ncols, labels = _sample_panels(params, load_eval_table(params, art), art)
    assert ncols == 1 + len(ROUNDS) + 2 and len(panels) == ncols * len(SEEDS) and labels == ["seed 1", "seed 2"]
    titles = [t for t, _ in panels[:ncols]]
    assert titles[0].startswith("dense") and [t.split(" ·")[0] for t in titles[1:4]] == ["round 1", "round 2", "round 3"]
    assert titles[4].startswith("random, round 3") and titles[5].startswith("reinit, round 3")
    assert Image.open(page / "samples.png").size[0] > Image.open(page / "samples.png").size[1]
