"""The budget stages on a tiny study: the dense run again at factor x train.steps from the same theta0 and
data seed (lr decay stretched, warm-up kept), the round's ticket rewound to the longer run's theta_k and
retrained to the longer budget, both evaluated like the chain's nets; the chain's files untouched."""
import functools

import pandas as pd
import pytest
import torch

from pipeline.core import paths
from pipeline.core.io import load_json, load_torch
from pipeline.data import sources as data
from pipeline.sparsity import tickets
from pipeline.sparsity.masks import Mask
from pipeline.train.loop import lr_factor
from stages.dense import run_dense
from stages.dense_budget import run_dense_budget
from stages.eval_budget import run_eval_budget
from stages.features import run_features
from stages.init import run_init
from stages.prepare import run_prepare
from stages.prune import run_prune
from stages.reference import run_reference
from stages.retrain_budget import run_retrain_budget


@pytest.mark.slow
def test_budget_stages_train_twice_as_long_and_evaluate_like_the_chain(tiny, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(data, "_mnist5k", functools.cache(data._mnist5k))
    # k = 4 lies after the 2-step warm-up, so theta_k of the longer run differs from the chain's
    params = tiny(rewind={"mode": "checkpoint", "step": 4}, budget={"seeds": [1, 2], "round": 1})
    T, k = params.train.steps, params.rewind.step
    run_init(params)
    run_prepare(params)
    run_dense(params, 1)
    run_prune(params, 1, 1)
    chain = {p: p.read_bytes() for p in paths.train_dir(1, 0).iterdir()}

    run_dense_budget(params, 1)
    dense_dir = paths.budget_train_dir(1, 0)
    short = pd.read_csv(paths.train_dir(1, 0) / "loss.csv").set_index("step")["lr"]
    long = pd.read_csv(dense_dir / "loss.csv").set_index("step")["lr"]
    assert long.index.max() == 2 * T and short.index.max() == T
    for s, lr in long.items():  # the schedule of a run that ends at 2T: same warm-up, longer decay
        assert lr == pytest.approx(params.train.lr * lr_factor(s, 2 * T, params.train)), s
    assert long[T] > short[T], "the decay is stretched to the longer budget"
    theta_k, chain_theta_k = load_torch(dense_dir / "rewind.pt"), load_torch(paths.train_dir(1, 0) / "rewind.pt")
    assert any(not torch.equal(theta_k[n], chain_theta_k[n]) for n in theta_k)
    assert sorted(load_torch(dense_dir / "ema_checks.pt")) == [T, round(1.5 * T)]

    run_retrain_budget(params, 1)
    out = paths.budget_train_dir(1, 1)
    mask = Mask.from_state_dict(load_torch(paths.prune_dir(1, 1) / "mask.pt"))
    start = load_torch(out / "start.pt")
    for n, t in start.items():  # the chain's mask on the longer dense run's theta_k
        assert torch.equal(t, theta_k[n] * mask[n] if n in mask else theta_k[n]), n
    assert load_json(out / "rewind.json") == {"mode": "checkpoint", "start_step": k, "steps": 2 * T, "seed": 1, "round": 1}
    steps = pd.read_csv(out / "loss.csv")["step"]
    assert steps.min() > k and steps.max() == 2 * T
    _, ema, saved_mask, meta = tickets.load_ticket(out / "model.pt", params)
    assert meta == {"seed": 1, "round": 1} and all(torch.equal(saved_mask[n], mask[n]) for n in mask)
    assert all(torch.count_nonzero(dict(ema.named_parameters())[n][~mask[n]]) == 0 for n in mask)

    run_features(params)
    run_reference(params)
    run_eval_budget(params, 1)
    for r, kind in ((0, "dense"), (1, "ticket")):
        m = load_json(paths.budget_eval_dir(1, r) / "metrics.json")
        assert (m["kind"], m["round"], m["train_steps"], m["budget_factor"]) == (kind, r, 2 * T, 2)
        assert m["fid_ci"][0] <= m["fid"] <= m["fid_ci"][1]
        assert (paths.budget_eval_dir(1, r) / "samples.png").exists()
    assert load_json(paths.budget_eval_dir(1, 1) / "metrics.json")["sparsity"] > 0.4
    paired = load_json(paths.budget_eval_dir(1, 0) / "paired.json")
    assert sorted(paired["heldout_curve"], key=int) == [str(T), str(round(1.5 * T)), str(2 * T)]
    assert "fid_bootstrap_replicates" in load_json(paths.budget_eval_dir(1, 1) / "paired.json")
    assert {p: p.read_bytes() for p in paths.train_dir(1, 0).iterdir()} == chain, "the chain is left alone"
    assert not paths.eval_dir(1, 0).exists()
