"""model.theta0: one theta0 shared by every replicate seed (default), or each seed's own draw, with
the population the report states following the choice."""
import pytest
import torch

from pipeline.core import paths
from pipeline.core.config import ConfigError
from pipeline.core.io import load_torch
from pipeline.report.findings import NOT_MEASURED, similarity_findings
from pipeline.sparsity import tickets
from pipeline.sparsity.masks import Mask
from pipeline.sparsity.rewind import rewound_state, theta0_for
from stages.dense import run_dense
from stages.init import run_init
from stages.prepare import run_prepare


def _same(a, b):
    return all(torch.equal(a[n], b[n]) for n in a)


def test_shared_theta0_is_the_init_stage_one_and_per_seed_draws_differ_by_seed(tiny, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shared = tiny()
    assert shared.model.theta0 == "shared"
    run_init(shared)
    init = load_torch(paths.init_dir() / "theta0.pt")
    assert _same(theta0_for(shared, 1), init) and _same(theta0_for(shared, 2), init)
    own = tiny(model={"theta0": "per_seed"})
    one, two = theta0_for(own, 1), theta0_for(own, 2)
    assert not _same(one, two) and not _same(one, init)
    assert _same(one, theta0_for(own, 1)), "seeded"
    assert {n: t.shape for n, t in one.items()} == {n: t.shape for n, t in init.items()}


def test_per_seed_theta0_reaches_the_dense_run_and_the_rewind_to_theta0(tiny, tmp_path, monkeypatch):
    for d in ("own", "shared"):
        (tmp_path / d).mkdir()
    monkeypatch.chdir(tmp_path / "own")
    params = tiny(model={"theta0": "per_seed"}, rewind={"mode": "init"})
    run_init(params)
    run_prepare(params)
    mask = Mask({n: torch.rand_like(t) < 0.5 for n, t in theta0_for(params, 2).items() if n.endswith("conv.weight")})
    state = rewound_state(params, 2, 1, mask)
    own = theta0_for(params, 2)
    for n in mask:
        assert torch.equal(state[n], own[n] * mask[n]), n
    run_dense(params, 1)
    run_dense(params, 2)
    a = tickets.load_ticket(paths.train_dir(1, 0) / "model.pt", params)[0].state_dict()
    shared_run = tiny(rewind={"mode": "init"})
    monkeypatch.chdir(tmp_path / "shared")
    run_init(shared_run)
    run_prepare(shared_run)
    run_dense(shared_run, 1)
    b = tickets.load_ticket(paths.train_dir(1, 0) / "model.pt", shared_run)[0].state_dict()
    assert not _same(a, b), "seed 1 trained from its own theta0, not the shared one"


def test_per_seed_theta0_is_refused_with_layerwise_and_changes_the_stated_population(tiny):
    with pytest.raises(ConfigError, match="model.theta0"):
        tiny(model={"theta0": "per_seed"}, sparsity={"schedule": "layerwise"})
    with pytest.raises(ConfigError, match="model.theta0"):
        tiny(model={"theta0": "everyone"})
    assert "initialisation not varied" in tiny().population()
    assert "vary the data order and the initialisation" in tiny(model={"theta0": "per_seed"}).population()


def test_similarity_claims_are_not_tested_on_tickets_of_different_theta0s():
    summary = {"claims": {"upstream_vs_downstream": {"effect": 0.2, "ci": [0.1, 0.3]}},
               "population": {"theta0": "per seed", "is": "pairs of tickets of different theta0s", "n_pairs": 3}}
    rows = similarity_findings(summary, "kappa")
    assert rows and all(r["verdict"] == NOT_MEASURED for r in rows)
    assert all("not tested" in r["test"] for r in rows)
    summary["population"]["theta0"] = "shared by every seed"
    assert similarity_findings(summary, "kappa")[0]["verdict"] != NOT_MEASURED
