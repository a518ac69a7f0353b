from collections import Counter

import pytest
import torch

from pipeline.core.config import DiffusionConfig, ModelConfig
from pipeline.ddpm.diffusion import Diffusion, sample_images
from pipeline.ddpm.unet import Attention, ResBlock, build_unet, count_parameters


def test_paper_configuration_has_35_7m_parameters():
    # dim=64, dim_mults=(1,2,4,8) at 32x32x3: the paper's U-Net (and Ho et al.'s CIFAR-10 model) has 35.7 M
    cfg = ModelConfig(dim=64, dim_mults=(1, 2, 4, 8), num_res_blocks=2, attn_resolutions=(16, 8), norm_groups=32)
    n = count_parameters(build_unet(cfg, channels=3, image_size=32))
    assert abs(n - 35.7e6) / 35.7e6 < 0.05, n


def _unet(attn=(4,)):
    # 16x16 with dim_mults (1, 2, 2): levels at 16, 8 and 4 (the last level does not downsample)
    torch.manual_seed(0)
    cfg = ModelConfig(dim=8, dim_mults=(1, 2, 2), attn_resolutions=attn, norm_groups=4)
    return build_unet(cfg, channels=3, image_size=16).eval()


def _differ(a, b):
    return (a - b).abs().max().item() > 1e-4


def test_unet_output_is_per_image_and_depends_on_its_own_input_and_timestep():
    model = _unet()
    torch.manual_seed(1)
    x, t = torch.randn(4, 3, 16, 16), torch.tensor([0, 10, 500, 999])
    with torch.no_grad():
        out = model(x, t)
        assert out.shape == x.shape
        # GroupNorm and attention act per image: batch-mates never leak into a prediction
        for i in range(len(x)):
            assert torch.allclose(model(x[i:i + 1], t[i:i + 1]), out[i:i + 1], atol=1e-5), i
        # the input matters, locally to its own image
        x2 = x.clone()
        x2[0, :, 3, 5] += 1.0
        out2 = model(x2, t)
        assert _differ(out2[0], out[0]) and torch.allclose(out2[1:], out[1:], atol=1e-5)
        # the timestep matters: one image at four timesteps gives four different predictions
        same = model(x[:1].expand(4, -1, -1, -1), t)
        assert all(_differ(same[i], same[j]) for i in range(4) for j in range(i + 1, 4))
        # ... and only through the time embedding projected into every residual block
        for block in (m for m in model.modules() if isinstance(m, ResBlock)):
            block.time_proj.weight.zero_()
            block.time_proj.bias.zero_()
        cut = model(x[:1].expand(4, -1, -1, -1), t)
        assert torch.allclose(cut, cut[:1].expand(4, -1, -1, -1), atol=1e-6)


def test_gradients_of_the_denoising_loss_reach_every_parameter():
    model = _unet().train()
    g = torch.Generator().manual_seed(2)
    x0 = torch.rand(4, 3, 16, 16, generator=g) * 2 - 1
    t = torch.randint(0, 1000, (4,), generator=g)
    Diffusion(DiffusionConfig()).loss(model, x0, t, torch.randn(x0.shape, generator=g)).backward()
    dead = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not dead, dead


@pytest.mark.parametrize("attn, expected", [
    ((4,), {4: 2}),            # the lowest level, down and up path
    ((8, 16), {8: 2, 16: 2}),
    ((2, 32), {}),             # no level runs at these resolutions: no attention but the middle one
    ((), {}),
])
def test_attention_sits_exactly_at_the_configured_resolutions(attn, expected):
    model = _unet(attn)
    seen = []
    levels = [m for name, m in model.named_modules() if isinstance(m, Attention) and name != "mid_attn"]
    for module in levels:
        module.register_forward_hook(lambda mod, inp, out: seen.append(inp[0].shape[-1]))
    with torch.no_grad():
        model(torch.randn(1, 3, 16, 16), torch.tensor([3]))
    assert len(levels) == sum(expected.values())
    assert Counter(seen) == Counter(expected), "each attention module runs once, at its resolution"
    assert isinstance(model.mid_attn, Attention)


def test_a_few_adam_steps_on_a_fixed_batch_reduce_the_denoising_loss():
    torch.manual_seed(0)
    model = build_unet(ModelConfig(dim=8, dim_mults=(1, 2), attn_resolutions=(4,), norm_groups=4), 1, 8)
    d = Diffusion(DiffusionConfig(timesteps=100))
    g = torch.Generator().manual_seed(3)
    x0 = torch.linspace(-1, 1, 8).view(1, 1, 1, 8).expand(16, 1, 8, 8)  # one smooth image, many noises
    t = torch.randint(0, 100, (16,), generator=g)
    noise = torch.randn(x0.shape, generator=g)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    before = d.loss(model, x0, t, noise).item()
    for _ in range(20):
        opt.zero_grad()
        d.loss(model, x0, t, noise).backward()
        opt.step()
    after = d.loss(model, x0, t, noise).item()
    assert after < 0.25 * before, (before, after)  # ~0.92 -> ~0.05 when the net learns


def test_forward_process_matches_q_xt_given_x0():
    """q(x_t|x_0) = N(sqrt(abar_t) x0, (1-abar_t) I): check empirical mean and variance."""
    d = Diffusion(DiffusionConfig())
    abar = torch.cumprod(1 - torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64), 0)
    torch.manual_seed(0)
    x0 = torch.full((200_000, 1, 1, 1), 0.7)
    for t in (0, 250, 999):
        xt = d.q_sample(x0, torch.full((len(x0),), t), torch.randn_like(x0))
        assert abs(xt.mean().item() - 0.7 * abar[t].sqrt().item()) < 5e-3
        assert abs(xt.var().item() - (1 - abar[t]).item()) < 5e-3 + 0.02 * (1 - abar[t]).item()
    assert abs(abar[-1].item() - 4.04e-5) < 1e-6, "Ho et al.'s schedule ends almost at pure noise"


def test_loss_is_l2_or_l1_on_noise():
    model = lambda x, t: torch.zeros_like(x)  # noqa: E731  predicts no noise
    noise = torch.ones(4, 1, 2, 2) * 2
    x0, t = torch.zeros(4, 1, 2, 2), torch.zeros(4, dtype=torch.long)
    assert Diffusion(DiffusionConfig(loss="l2")).loss(model, x0, t, noise).item() == 4.0
    assert Diffusion(DiffusionConfig(loss="l1")).loss(model, x0, t, noise).item() == 2.0


def _tiny_model():
    torch.manual_seed(3)
    return build_unet(ModelConfig(dim=8, dim_mults=(1, 2), attn_resolutions=(), norm_groups=4), 1, 8).eval()


def test_samplers_are_deterministic_with_a_seed():
    d, model = Diffusion(DiffusionConfig(timesteps=50)), _tiny_model()
    a = sample_images(d, model, 6, (1, 8, 8), steps=5, batch_size=4, seed=11, progress=False)
    b = sample_images(d, model, 6, (1, 8, 8), steps=5, batch_size=4, seed=11, progress=False)
    c = sample_images(d, model, 6, (1, 8, 8), steps=5, batch_size=4, seed=12, progress=False)
    assert a.shape == (6, 1, 8, 8) and torch.equal(a, b) and not torch.equal(a, c)
    assert a.min() >= -1 and a.max() <= 1
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    p, q = d.sample_ddpm(model, (2, 1, 8, 8), generator=g1), d.sample_ddpm(model, (2, 1, 8, 8), generator=g2)
    assert torch.equal(p, q)


def test_ddim_with_perfect_denoiser_recovers_the_data_point():
    """If eps-prediction is exact for a single data point, DDIM lands on that point."""
    d = Diffusion(DiffusionConfig(timesteps=200))
    target = torch.full((1, 1, 2, 2), 0.5)

    def oracle(x, t):
        ab = d.alphas_bar[t].view(-1, 1, 1, 1)
        return (x - ab.sqrt() * target) / (1 - ab).sqrt()

    out = d.sample_ddim(oracle, (3, 1, 2, 2), steps=20, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(out, target.expand(3, -1, -1, -1), atol=1e-4)


def test_ddim_with_eta_is_stochastic_yet_deterministic_for_a_seed():
    d, model = Diffusion(DiffusionConfig(timesteps=50)), _tiny_model()

    def run(eta, seed):
        return d.sample_ddim(model, (3, 1, 8, 8), steps=5, eta=eta, generator=torch.Generator().manual_seed(seed))

    assert torch.equal(run(0.5, 4), run(0.5, 4))
    assert _differ(run(0.5, 4), run(0.5, 5))
    # same starting noise x_T (same seed), yet eta > 0 takes another path than the deterministic sampler
    assert _differ(run(0.5, 4), run(0.0, 4)) and _differ(run(1.0, 4), run(0.5, 4))


@pytest.mark.parametrize("eta", [0.5, 1.0])
def test_ddim_with_eta_and_perfect_denoiser_recovers_the_data_point(eta):
    d = Diffusion(DiffusionConfig(timesteps=200))
    target = torch.full((1, 1, 2, 2), 0.5)

    def oracle(x, t):
        ab = d.alphas_bar[t].view(-1, 1, 1, 1)
        return (x - ab.sqrt() * target) / (1 - ab).sqrt()

    out = d.sample_ddim(oracle, (3, 1, 2, 2), steps=20, eta=eta, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(out, target.expand(3, -1, -1, -1), atol=1e-4)


@pytest.mark.parametrize("eta", [0.5, 1.0])
def test_ddim_with_eta_and_exact_denoiser_samples_the_data_marginal(eta):
    """Data N(mu, s^2) per pixel has an exact eps-predictor, E[eps | x_t]; every member of the DDIM
    family keeps q's marginals, so the samples must have the data's mean and variance. The added
    noise and the shrunk eps coefficient must match: drop either and the variance is wrong."""
    d = Diffusion(DiffusionConfig())
    mu, s = 0.2, 0.3

    def exact_eps(x, t):
        ab = d.alphas_bar[t].view(-1, 1, 1, 1)
        return (1 - ab).sqrt() * (x - ab.sqrt() * mu) / (ab * s**2 + 1 - ab)

    out = d.sample_ddim(exact_eps, (40_000, 1, 1, 1), steps=1000, eta=eta,
                        generator=torch.Generator().manual_seed(0))
    assert abs(out.mean().item() - mu) < 0.01
    # discretisation drops Var(x0 | x_t) from each step: ~3 % low at 1000 steps
    assert abs(out.var().item() / s**2 - 1) < 0.06, out.var().item()


def test_batch_dropout_slices_the_global_batch_mask():
    """A rank's rows of a dropout layer see the masks that 1 process gives those samples."""
    from pipeline.ddpm.unet import BatchDropout, set_dropout_rows

    x = torch.randn(7, 4, 3, 3) + 5.0  # no exact zeros before dropout
    drop = BatchDropout(0.3).train()
    set_dropout_rows(drop, (7, 0, 7))
    torch.manual_seed(4)
    whole = drop(x)
    dropped = (whole == 0).float().mean().item()
    assert 0.15 < dropped < 0.45 and torch.allclose(whole[whole != 0], (x / 0.7)[whole != 0])
    for lo, hi in ((0, 4), (4, 7)):
        set_dropout_rows(drop, (7, lo, hi))
        torch.manual_seed(4)
        torch.testing.assert_close(drop(x[lo:hi]), whole[lo:hi], rtol=0, atol=0)
    assert torch.equal(drop.eval()(x), x), "identity in eval"
    set_dropout_rows(drop, None)
    assert (drop.train()(x) == 0).any(), "plain dropout without rows"
