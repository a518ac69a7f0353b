import torch

from pipeline import artifacts as A
from pipeline.diffusion import Diffusion
from pipeline.io import load_torch
from pipeline.masks import Mask
from pipeline.pruning import prune_round
from pipeline.study import rewound_state, run_dense, run_init, run_prune
from pipeline.training import batch_indices, train


def tiny_setup(tiny, **over):
    params = tiny(**over)
    torch.manual_seed(0)
    model = A.new_model(params)
    data = torch.rand(40, 1, 8, 8) * 2 - 1
    return params, model, Diffusion(params.diffusion), data


def test_batches_cover_each_epoch_once_and_depend_only_on_seed_and_step():
    n, b = 10, 4
    seen = torch.cat([batch_indices(n, b, seed=3, step=s) for s in range(5)])  # 20 = two epochs
    assert sorted(seen[:10].tolist()) == list(range(10)) and sorted(seen[10:].tolist()) == list(range(10))
    assert torch.equal(batch_indices(n, b, 3, 7), batch_indices(n, b, 3, 7))
    assert not torch.equal(batch_indices(n, b, 3, 0), batch_indices(n, b, 4, 0))


def test_pruned_weights_stay_exactly_zero_in_model_and_ema(tiny):
    params, model, diffusion, data = tiny_setup(tiny, train={"lr": 0.05, "warmup_steps": 0})
    mask = prune_round(dict(model.named_parameters()), Mask.dense(model), "uniform", 0.7)
    result = train(model, diffusion, data, params.train, steps=8, seed=1, mask=mask, progress=False)
    for net in (result.model, result.ema):
        p = dict(net.named_parameters())
        for n in mask:
            assert torch.count_nonzero(p[n][~mask[n]]) == 0, n
        # the survivors did train
    moved = [n for n in mask if not torch.equal(dict(result.model.named_parameters())[n][mask[n]],
                                               dict(A.new_model(params).named_parameters())[n][mask[n]])]
    assert moved


def test_resume_from_checkpoint_equals_uninterrupted_run(tiny, tmp_path):
    params, model, diffusion, data = tiny_setup(tiny)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    full = train(model, diffusion, data, params.train, steps=6, seed=2, progress=False)

    ckpt = tmp_path / "ck.pt"
    interrupted = A.new_model(params)
    interrupted.load_state_dict(start)
    train(interrupted, diffusion, data, params.train, steps=6, seed=2, checkpoint=ckpt, fingerprint="f",
          progress=False, stop_after=3)  # "killed" after step 3; the last checkpoint is step 2
    assert load_torch(ckpt)["step"] == 2
    fresh = A.new_model(params)  # a new process starts from theta0 again...
    fresh.load_state_dict(start)
    resumed = train(fresh, diffusion, data, params.train, steps=6, seed=2, checkpoint=ckpt, fingerprint="f",
                    progress=False)
    assert resumed.resumed_from == 2
    for (n, a), b in zip(full.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), n
    for a, b in zip(full.ema.state_dict().values(), resumed.ema.state_dict().values()):
        assert torch.equal(a, b)
    assert [h["loss"] for h in full.history] == [h["loss"] for h in resumed.history]


def test_checkpoint_of_other_params_is_not_resumed(tiny, tmp_path):
    params, model, diffusion, data = tiny_setup(tiny)
    ckpt = tmp_path / "ck.pt"
    train(model, diffusion, data, params.train, steps=4, seed=2, checkpoint=ckpt, fingerprint="old", progress=False)
    again = train(A.new_model(params), diffusion, data, params.train, steps=4, seed=2, checkpoint=ckpt,
                  fingerprint="new", progress=False)
    assert again.resumed_from == 0


def test_rewind_restores_theta0_or_theta_k_times_mask_and_reinit_differs(tiny, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    params = tiny()
    run_init(params)
    run_dense(params, 1)
    run_prune(params, 1, 1)
    mask = Mask.from_state_dict(load_torch(A.prune_dir(1, 1) / "mask.pt"))
    assert 0.45 < mask.sparsity() < 0.55
    theta0 = load_torch(A.init_dir() / "theta0.pt")
    theta_k = load_torch(A.train_dir(1, 0) / "rewind.pt")
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
