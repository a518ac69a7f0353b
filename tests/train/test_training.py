import copy

import pytest
import torch

from pipeline.core import paths
from pipeline.sparsity import tickets
from pipeline.ddpm.diffusion import Diffusion
from pipeline.core.io import load_torch
from pipeline.sparsity.masks import Mask
from pipeline.sparsity.pruning import prune_round
from pipeline.sparsity.rewind import rewound_state
from stages.dense import run_dense
from stages.init import run_init
from stages.prepare import run_prepare
from stages.prune import run_prune
from stages.retrain import run_retrain
from stages.rewind import run_rewind
from pipeline.train.loop import batch_indices, train


def tiny_setup(tiny, **over):
    params = tiny(**over)
    torch.manual_seed(0)
    model = tickets.new_model(params)
    data = torch.rand(40, 1, 8, 8) * 2 - 1
    return params, model, Diffusion(params.diffusion), data


def test_batches_cover_each_epoch_once_and_depend_only_on_seed_and_step():
    n, b = 10, 4
    seen = torch.cat([batch_indices(n, b, seed=3, step=s) for s in range(5)])  # 20 = two epochs
    assert sorted(seen[:10].tolist()) == list(range(10)) and sorted(seen[10:].tolist()) == list(range(10))
    assert torch.equal(batch_indices(n, b, 3, 7), batch_indices(n, b, 3, 7))
    assert not torch.equal(batch_indices(n, b, 3, 0), batch_indices(n, b, 4, 0))


def survivors_unmoved(start: dict, trained: torch.nn.Module, mask: Mask) -> list[str]:
    """Masked layers whose surviving weights are still exactly where training started."""
    p = dict(trained.named_parameters())
    return [n for n in mask if torch.equal(p[n][mask[n]], start[n][mask[n]])]


def test_pruned_weights_stay_exactly_zero_and_the_survivors_train(tiny):
    params, model, diffusion, data = tiny_setup(tiny, train={"lr": 0.05, "warmup_steps": 0})
    mask = prune_round(dict(model.named_parameters()), Mask.dense(model), "uniform", 0.7)
    start = {n: p.detach().clone() for n, p in model.named_parameters()}  # the weights training starts from
    idle = mask.apply_(copy.deepcopy(model))  # what a run that never stepped would return
    assert survivors_unmoved(start, idle, mask) == list(mask), "the check sees a run that did not train"

    result = train(model, diffusion, data, params.train, steps=8, seed=1, mask=mask, progress=False)
    for net in (result.model, result.ema):
        p = dict(net.named_parameters())
        for n in mask:
            assert torch.count_nonzero(p[n][~mask[n]]) == 0, n
    assert survivors_unmoved(start, result.model, mask) == [], "every layer's survivors moved off their start"
    assert survivors_unmoved(start, result.ema, mask) == []


def test_mask_factors_take_the_channels_last_strides_of_the_parameters(tiny, monkeypatch):
    """train() makes the weights channels_last; factors with other strides would push every
    _foreach_mul_ of the mask off its fused fast path."""
    params, model, diffusion, data = tiny_setup(tiny)
    mask = prune_round(dict(model.named_parameters()), Mask.dense(model), "uniform", 0.5)
    bound = []
    bind = Mask.bind
    monkeypatch.setattr(Mask, "bind", lambda self, net: bound.append(bind(self, net)) or bound[-1])
    train(model, diffusion, data, params.train, steps=2, seed=1, mask=mask, progress=False)
    assert len(bound) == 2, "model and EMA copy"
    convs = 0
    for b in bound:
        for p, f in zip(b.params, b.factors):
            assert f.stride() == p.stride() and f.shape == p.shape and f.dtype == p.dtype
            convs += p.dim() == 4 and not p.is_contiguous()
        assert all(torch.equal(f.bool(), mask[n]) for n, f in zip(mask, b.factors))
    assert convs > 0, "the conv weights are channels_last, so the check bites"


def first_round_pruned(tiny, tmp_path, monkeypatch):
    """Run the init, dense (seed 1) and round-1 prune stages in `tmp_path`; return their params."""
    monkeypatch.chdir(tmp_path)
    params = tiny()
    run_init(params)
    run_prepare(params)
    run_dense(params, 1)
    run_prune(params, 1, 1)
    return params


def test_retrain_moves_the_rewound_survivors_and_keeps_its_mask(tiny, tmp_path, monkeypatch):
    """The retrain stage's model.pt against the rewind stage's weights.pt it started from."""
    params = first_round_pruned(tiny, tmp_path, monkeypatch)
    run_rewind(params, 1, 1)
    run_retrain(params, 1, 1)
    mask = Mask.from_state_dict(load_torch(paths.prune_dir(1, 1) / "mask.pt"))
    rewound = load_torch(paths.rewind_dir(1, 1) / "weights.pt")
    model, ema, saved_mask, meta = tickets.load_ticket(paths.train_dir(1, 1) / "model.pt", params)
    assert meta == {"seed": 1, "round": 1}
    assert all(torch.equal(saved_mask[n], mask[n]) for n in mask) and set(saved_mask) == set(mask)
    for net in (model, ema):
        p = dict(net.named_parameters())
        for n in mask:
            assert torch.count_nonzero(p[n][~mask[n]]) == 0, n
    assert survivors_unmoved(rewound, model, mask) == []
    assert survivors_unmoved(rewound, ema, mask) == []
    dense_only = [n for n, p in model.named_parameters() if n not in mask]
    assert all(not torch.equal(dict(model.named_parameters())[n], rewound[n]) for n in dense_only), \
        "biases and norms train too"


def test_resume_from_checkpoint_equals_uninterrupted_run(tiny, tmp_path):
    params, model, diffusion, data = tiny_setup(tiny)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    full = train(model, diffusion, data, params.train, steps=6, seed=2, progress=False)

    ckpt = tmp_path / "ck.pt"
    interrupted = tickets.new_model(params)
    interrupted.load_state_dict(start)
    train(interrupted, diffusion, data, params.train, steps=6, seed=2, checkpoint=ckpt, fingerprint="f",
          progress=False, stop_after=3)  # "killed" after step 3; the last checkpoint is step 2
    assert load_torch(ckpt)["step"] == 2
    fresh = tickets.new_model(params)  # a new process starts from theta0 again...
    fresh.load_state_dict(start)
    resumed = train(fresh, diffusion, data, params.train, steps=6, seed=2, checkpoint=ckpt, fingerprint="f",
                    progress=False)
    assert resumed.resumed_from == 2
    for (n, a), b in zip(full.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), n
    for a, b in zip(full.ema.state_dict().values(), resumed.ema.state_dict().values()):
        assert torch.equal(a, b)
    assert [h["loss"] for h in full.history] == [h["loss"] for h in resumed.history]


def test_compile_is_decided_from_the_whole_run_not_what_a_resume_has_left(tiny, tmp_path, monkeypatch):
    from pipeline.train import loop

    asked = []
    real = loop.maybe_compile
    monkeypatch.setattr(loop, "maybe_compile", lambda *a, **kw: asked.append(kw["work"]) or real(*a, **kw))
    params, model, diffusion, data = tiny_setup(tiny)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    ckpt = tmp_path / "ck.pt"
    train(model, diffusion, data, params.train, steps=6, seed=2, start_step=1, checkpoint=ckpt, fingerprint="f",
          progress=False, stop_after=5)
    model.load_state_dict(start)
    resumed = train(model, diffusion, data, params.train, steps=6, seed=2, start_step=1, checkpoint=ckpt,
                    fingerprint="f", progress=False)
    assert resumed.resumed_from == 4
    assert asked == [5 * params.train.batch_size] * 2


def test_mask_and_adam_state_survive_a_resume(tiny, tmp_path):
    """A pruned run killed mid-way and resumed ends bit-identical to an uninterrupted one: weights,
    EMA and Adam's moments, with the pruned positions zero in all of them."""
    params, model, diffusion, data = tiny_setup(tiny, train={"steps": 8, "warmup_steps": 4})
    mask = prune_round(dict(model.named_parameters()), Mask.dense(model), "uniform", 0.6)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    names = [n for n, _ in model.named_parameters()]

    def run(ckpt, **kw):
        net = tickets.new_model(params)  # every process starts from the same unpruned weights
        net.load_state_dict(start)
        return train(net, diffusion, data, params.train, steps=8, seed=3, mask=mask, checkpoint=ckpt,
                     fingerprint="f", progress=False, **kw)

    full = run(tmp_path / "full.pt")
    run(tmp_path / "cut.pt", stop_after=5)  # killed after step 5; the last checkpoint is step 4
    assert load_torch(tmp_path / "cut.pt")["step"] == 4
    resumed = run(tmp_path / "cut.pt")
    assert resumed.resumed_from == 4
    for a, b in ((full.model, resumed.model), (full.ema, resumed.ema)):
        for (n, x), y in zip(a.state_dict().items(), b.state_dict().values()):
            assert torch.equal(x, y), n
        p = dict(b.named_parameters())
        assert all(torch.count_nonzero(p[n][~mask[n]]) == 0 for n in mask)

    adam_full = load_torch(tmp_path / "full.pt")["optimizer"]
    adam_resumed = load_torch(tmp_path / "cut.pt")["optimizer"]  # written by the resumed run at step 8
    assert adam_full["param_groups"] == adam_resumed["param_groups"]
    for i, n in enumerate(names):
        for key in ("step", "exp_avg", "exp_avg_sq"):
            assert torch.equal(adam_full["state"][i][key], adam_resumed["state"][i][key]), (n, key)
        if n in mask:
            for key in ("exp_avg", "exp_avg_sq"):
                moment = adam_resumed["state"][i][key]
                assert torch.count_nonzero(moment[~mask[n]]) == 0, (n, key)
                assert torch.count_nonzero(moment[mask[n]]) > 0, (n, key)


def test_checkpoint_of_other_params_is_not_resumed(tiny, tmp_path):
    params, model, diffusion, data = tiny_setup(tiny)
    ckpt = tmp_path / "ck.pt"
    train(model, diffusion, data, params.train, steps=4, seed=2, checkpoint=ckpt, fingerprint="old", progress=False)
    again = train(tickets.new_model(params), diffusion, data, params.train, steps=4, seed=2, checkpoint=ckpt,
                  fingerprint="new", progress=False)
    assert again.resumed_from == 0


def test_rewind_restores_theta0_or_theta_k_times_mask_and_reinit_differs(tiny, tmp_path, monkeypatch):
    params = first_round_pruned(tiny, tmp_path, monkeypatch)
    mask = Mask.from_state_dict(load_torch(paths.prune_dir(1, 1) / "mask.pt"))
    assert 0.45 < mask.sparsity() < 0.55
    theta0 = load_torch(paths.init_dir() / "theta0.pt")
    theta_k = load_torch(paths.train_dir(1, 0) / "rewind.pt")
    assert any(not torch.equal(theta0[n], theta_k[n]) for n in mask), "theta_k has trained k steps"
    for mode, source in (("init", theta0), ("checkpoint", theta_k)):
        state = rewound_state(tiny(rewind={"mode": mode}), 1, 1, mask)
        for n, t in state.items():
            expected = source[n] * mask[n] if n in mask else source[n]
            assert torch.equal(t, expected), (mode, n)
    reinit = rewound_state(tiny(rewind={"mode": "reinit"}), 1, 1, mask)
    for n in mask:
        assert torch.count_nonzero(reinit[n][~mask[n]]) == 0
        assert not torch.equal(reinit[n], theta0[n] * mask[n]), "reinit re-draws the weights"


def test_lr_schedule_warms_up_then_decays_to_the_floor_on_absolute_steps():
    from pipeline.core.config import TrainConfig
    from pipeline.train.loop import lr_factor

    const = TrainConfig(steps=100, warmup_steps=10, lr_schedule="constant")
    assert [lr_factor(s, 100, const) for s in (0, 4, 9, 50, 99)] == [0.1, 0.5, 1.0, 1.0, 1.0]
    for kind in ("cosine", "linear"):
        cfg = TrainConfig(steps=100, warmup_steps=10, lr_schedule=kind, lr_floor=0.1)
        f = [lr_factor(s, 100, cfg) for s in range(100)]
        assert f[:10] == [lr_factor(s, 100, const) for s in range(10)]  # the same warm-up
        assert all(a >= b for a, b in zip(f[9:], f[10:])) and f[-1] == pytest.approx(0.1)  # decays to the floor
        assert 0.1 < f[55] < 1.0
    # a retrain continuing at step k sees the dense run's lr at k (the scheduler is offset by start_step)
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    cfg = TrainConfig(steps=100, warmup_steps=10, lr_schedule="cosine", lr_floor=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s + 40, 100, cfg))
    assert sched.get_last_lr()[0] == pytest.approx(lr_factor(40, 100, cfg))
