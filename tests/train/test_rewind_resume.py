"""Late rewinding continues the dense run at step k: same lr, same batches, timesteps and noise."""
import pandas as pd
import pytest
import torch

from pipeline.core import paths
from pipeline.sparsity import tickets
from pipeline.ddpm.diffusion import Diffusion
from pipeline.core.io import load_json, load_torch
from stages.dense import run_dense
from stages.init import run_init
from stages.prepare import run_prepare
from stages.prune import run_prune
from stages.retrain import run_retrain
from stages.rewind import run_rewind
from pipeline.train.loop import train


@pytest.fixture
def recorded_losses(monkeypatch):
    """Every (x0, t, noise) the loss sees, in call order."""
    calls = []
    original = Diffusion.loss

    def loss(self, model, x0, t, noise):
        calls.append((x0.detach().clone(), t.clone(), noise.clone()))
        return original(self, model, x0, t, noise)

    monkeypatch.setattr(Diffusion, "loss", loss)
    return calls


def test_retrain_from_theta_k_continues_the_dense_run_at_step_k(tiny, tmp_path, monkeypatch, recorded_losses):
    monkeypatch.chdir(tmp_path)
    # k = 2 lies inside the warm-up (5 steps): a restarted schedule would give a different lr
    params = tiny(train={"steps": 8, "warmup_steps": 5, "log_every": 1, "checkpoint_every": 100},
                  rewind={"mode": "checkpoint", "step": 2})
    k, steps = params.rewind.step, params.train.steps
    run_init(params)
    run_prepare(params)
    run_dense(params, 1)
    dense_calls = list(recorded_losses)
    assert len(dense_calls) == steps
    run_prune(params, 1, 1)
    run_rewind(params, 1, 1)
    recorded_losses.clear()
    run_retrain(params, 1, 1)

    assert len(recorded_losses) == steps - k, "the retrain trains steps k..T-1"
    for i, (x0, t, noise) in enumerate(recorded_losses):
        dx0, dt, dnoise = dense_calls[k + i]
        assert torch.equal(x0, dx0) and torch.equal(t, dt) and torch.equal(noise, dnoise), f"step {k + i}"

    dense = pd.read_csv(paths.train_dir(1, 0) / "loss.csv").set_index("step")
    retrain = pd.read_csv(paths.train_dir(1, 1) / "loss.csv").set_index("step")
    assert list(retrain.index) == list(range(k + 1, steps + 1)), "history counts absolute steps"
    assert retrain["lr"].tolist() == dense.loc[retrain.index, "lr"].tolist()
    assert retrain["lr"].iloc[0] < params.train.lr, "still in the dense run's warm-up at step k"
    assert "images_per_s" not in retrain.columns, "no timings in a file stages depend on"


@pytest.mark.parametrize("mode", ["init", "reinit"])
def test_other_rewind_modes_train_the_full_run_from_step_0(tiny, tmp_path, monkeypatch, mode):
    monkeypatch.chdir(tmp_path)
    params = tiny(rewind={"mode": mode})
    run_init(params)
    run_prepare(params)
    run_dense(params, 1)
    run_prune(params, 1, 1)
    run_rewind(params, 1, 1)
    run_retrain(params, 1, 1)
    history = pd.read_csv(paths.train_dir(1, 1) / "loss.csv")
    assert history["step"].iloc[0] == params.train.log_every and history["step"].iloc[-1] == params.train.steps
    assert load_json(paths.rewind_dir(1, 1) / "rewind.json")["mode"] == mode


def test_checkpoint_of_another_device_type_is_not_resumed(tiny, tmp_path):
    params = tiny()
    torch.manual_seed(0)
    data = torch.rand(40, 1, 8, 8) * 2 - 1
    diffusion = Diffusion(params.diffusion)
    ckpt = tmp_path / "ck.pt"
    train(tickets.new_model(params), diffusion, data, params.train, steps=4, seed=2, checkpoint=ckpt,
          fingerprint="f", progress=False, stop_after=2)
    state = load_torch(ckpt)
    assert state["fingerprint"].startswith("cpu:"), "the fingerprint names the device type"
    again = train(tickets.new_model(params), diffusion, data, params.train, steps=4, seed=2, checkpoint=ckpt,
                  fingerprint="f", progress=False)
    assert again.resumed_from == 2, "same device and fingerprint: resumed"
    # the same work written on a GPU must not be resumed on the CPU (results differ numerically)
    state["fingerprint"] = state["fingerprint"].replace("cpu:", "cuda:", 1)
    state["step"] = 2
    torch.save(state, ckpt)
    other = train(tickets.new_model(params), diffusion, data, params.train, steps=4, seed=2, checkpoint=ckpt,
                  fingerprint="f", progress=False)
    assert other.resumed_from == 0


def test_start_step_must_lie_inside_the_run(tiny):
    params = tiny()
    with pytest.raises(ValueError, match="start_step"):
        train(tickets.new_model(params), Diffusion(params.diffusion), torch.zeros(4, 1, 8, 8), params.train,
              steps=4, seed=1, start_step=4, progress=False)
