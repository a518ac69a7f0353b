import torch

from pipeline.config import DiffusionConfig, ModelConfig
from pipeline.diffusion import Diffusion, sample_images
from pipeline.unet import build_unet, count_parameters


def test_paper_configuration_has_35_7m_parameters():
    # dim=64, dim_mults=(1,2,4,8) at 32x32x3: the paper's U-Net (and Ho et al.'s CIFAR-10 model) has 35.7 M
    cfg = ModelConfig(dim=64, dim_mults=(1, 2, 4, 8), num_res_blocks=2, attn_resolutions=(16, 8), norm_groups=32)
    n = count_parameters(build_unet(cfg, channels=3, image_size=32))
    assert abs(n - 35.7e6) / 35.7e6 < 0.05, n


def test_unet_predicts_noise_of_input_shape():
    cfg = ModelConfig(dim=8, dim_mults=(1, 2, 2), attn_resolutions=(4,), norm_groups=4)
    model = build_unet(cfg, channels=3, image_size=16)
    x = torch.randn(2, 3, 16, 16)
    out = model(x, torch.tensor([0, 999]))
    assert out.shape == x.shape
    assert not torch.allclose(model(x, torch.tensor([5, 5])), model(x, torch.tensor([900, 900]))), "time matters"


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
