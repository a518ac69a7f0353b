"""Controls: reinit keeps the ticket's exact mask with fresh weights; random keeps exactly its
per-layer kept counts and is rewound like the ticket; both train with the ticket's recipe."""
import pandas as pd
import pytest
import torch

from pipeline.core import paths
from pipeline.sparsity import tickets
from pipeline.core.config import ConfigError
from pipeline.sparsity.controls import control_start, random_mask_like
from stages.control import run_control
from pipeline.core.io import load_json, load_torch
from pipeline.sparsity.masks import Mask
from stages.dense import run_dense
from stages.init import run_init
from stages.prepare import run_prepare
from stages.prune import run_prune
from stages.rewind import run_rewind
from pipeline.sparsity.rewind import reinit_draw


@pytest.fixture
def ticket_round(tiny, tmp_path, monkeypatch):
    """A study dir with seed 1's dense run and its round-1 ticket mask (uniform schedule)."""
    monkeypatch.chdir(tmp_path)
    params = tiny(controls={"rounds": [1]})
    run_init(params)
    run_prepare(params)
    run_dense(params, 1)
    run_prune(params, 1, 1)
    run_rewind(params, 1, 1)
    return params, Mask.from_state_dict(load_torch(paths.prune_dir(1, 1) / "mask.pt"))


def test_random_mask_keeps_each_layers_count_and_moves_the_positions():
    g = torch.Generator().manual_seed(0)
    ticket = Mask({"a": torch.rand(30, 20, generator=g) < 0.2, "b": torch.rand(7, 3, 3, generator=g) < 0.6})
    rand = random_mask_like(ticket, torch.Generator().manual_seed(1))
    assert rand.kept_counts() == ticket.kept_counts()
    assert {n: rand[n].shape for n in rand} == {n: ticket[n].shape for n in ticket}
    assert not torch.equal(rand["a"], ticket["a"])
    again = random_mask_like(ticket, torch.Generator().manual_seed(1))
    assert all(torch.equal(rand[n], again[n]) for n in rand), "seeded"


def test_random_control_keeps_the_tickets_per_layer_counts_and_its_rewind_point(ticket_round):
    params, ticket = ticket_round
    mask, state = control_start(params, "random", 1, 1)
    assert list(mask) == list(ticket)
    assert mask.kept_counts() == ticket.kept_counts()
    assert any(not torch.equal(mask[n], ticket[n]) for n in mask), "positions are random"
    theta_k = load_torch(paths.train_dir(1, 0) / "rewind.pt")  # rewind.mode = checkpoint, like the ticket
    for n, t in state.items():
        expected = theta_k[n] * mask[n] if n in mask else theta_k[n]
        assert torch.equal(t, expected), n
    mask2, _ = control_start(params, "random", 1, 1)
    assert all(torch.equal(mask[n], mask2[n]) for n in mask), "the draw is seeded"


def test_reinit_control_keeps_exactly_the_tickets_mask_with_fresh_weights(ticket_round):
    params, ticket = ticket_round
    mask, state = control_start(params, "reinit", 1, 1)
    assert list(mask) == list(ticket) and all(torch.equal(mask[n], ticket[n]) for n in ticket)
    ticket_start = load_torch(paths.rewind_dir(1, 1) / "weights.pt")
    fresh = reinit_draw(params, 1, 1)
    for n in ticket:
        assert torch.count_nonzero(state[n][~ticket[n]]) == 0
        assert torch.equal(state[n], fresh[n] * ticket[n]), "the shared reinit draw, masked"
        assert not torch.equal(state[n], ticket_start[n]), "not the ticket's rewound weights"


def test_control_stage_trains_with_the_tickets_recipe_and_saves_like_a_ticket(ticket_round):
    params, ticket = ticket_round
    run_control(params, "random", 1, 1)
    out = paths.control_dir("random", 1, 1)
    mask = Mask.from_state_dict(load_torch(out / "mask.pt"))
    assert mask.kept_counts() == ticket.kept_counts()
    model, ema, saved_mask, meta = tickets.load_ticket(paths.control_train_dir("random", 1, 1) / "model.pt", params)
    assert meta == {"seed": 1, "round": 1, "kind": "random"}
    assert all(torch.equal(saved_mask[n], mask[n]) for n in mask)
    start = load_torch(out / "weights.pt")
    for net in (model, ema):
        weights = dict(net.named_parameters())
        for n in mask:
            assert torch.count_nonzero(weights[n][~mask[n]]) == 0, n
    assert any(not torch.equal(dict(model.named_parameters())[n][mask[n]], start[n][mask[n]]) for n in mask), \
        "the survivors trained"
    history = pd.read_csv(paths.control_train_dir("random", 1, 1) / "loss.csv")
    assert history["step"].iloc[-1] == params.train.steps
    assert history["step"].iloc[0] > params.rewind.step, "starts at the ticket's rewind step k"
    assert load_json(out / "rewind.json")["start_step"] == params.rewind.step
    # the chain's own files are untouched by a control
    assert not (paths.train_dir(1, 1)).exists()


def test_controls_params_are_validated(tiny):
    with pytest.raises(ConfigError, match="controls.rounds"):
        tiny(controls={"rounds": [5]})
    with pytest.raises(ConfigError, match="controls.kinds"):
        tiny(controls={"kinds": ["lucky"]})
    assert tiny(controls={"kinds": [], "rounds": [2]}).controls.kinds == ()


def test_reinit_control_gets_the_dense_budget_from_step_0_and_random_starts_at_k(ticket_round):
    """Late rewinding starts the ticket at step k; a reinit control started there at full learning
    rate would credit the ticket with k dense steps, so it trains from step 0, warm-up included."""
    params, _ = ticket_round
    assert params.rewind.mode == "checkpoint" and params.rewind.step > 0
    for kind, start in (("reinit", 0), ("random", params.rewind.step)):
        run_control(params, kind, 1, 1)
        assert load_json(paths.control_dir(kind, 1, 1) / "rewind.json")["start_step"] == start, kind
        steps = pd.read_csv(paths.control_train_dir(kind, 1, 1) / "loss.csv")["step"]
        assert steps.iloc[-1] == params.train.steps, kind
        assert (steps.iloc[0] <= params.train.log_every) == (start == 0), (kind, steps.iloc[0])
