"""Cost of a ticket: MACs of one forward pass and the compressed file on disk."""
from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from pipeline.app.params import parse_params
from pipeline.evaluate.cost import count_macs, load_compressed_ticket, save_compressed_ticket, torch_save_bytes
from pipeline.sparsity.masks import Mask, prunable_names
from pipeline.ddpm.unet import build_unet


def tiny_convnet() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),                 # 8x8 out
        nn.ReLU(),
        nn.Conv2d(4, 8, 3, stride=2, padding=1),       # 4x4 out
        nn.Conv2d(8, 8, 3, padding=1, groups=4),       # grouped, 4x4 out
        nn.Flatten(),
        nn.Linear(8 * 4 * 4, 10),
    )


# by hand: out_ch x in_ch/groups x kh x kw x output positions; linear: in x out x rows
HAND_MACS = 4 * 1 * 9 * 64 + 8 * 4 * 9 * 16 + 8 * 2 * 9 * 16 + 128 * 10 * 1


def test_macs_match_hand_count():
    dense, masked = count_macs(tiny_convnet(), None, (1, 1, 8, 8))
    assert dense == masked == HAND_MACS == 10496


def test_masked_macs_halve_with_half_the_weights():
    net = tiny_convnet()
    mask = Mask.dense(net)
    for name in mask:  # keep exactly the first half of every layer's weights
        flat = mask[name].view(-1)
        flat[flat.numel() // 2:] = False
    dense, masked = count_macs(net, mask, (1, 1, 8, 8))
    assert dense == HAND_MACS
    assert masked == HAND_MACS // 2

    one_layer = Mask({"0.weight": torch.zeros(4, 1, 3, 3, dtype=torch.bool)})  # first conv fully pruned
    assert count_macs(net, one_layer, (1, 1, 8, 8)) == (HAND_MACS, HAND_MACS - 4 * 9 * 64)


def test_linear_counts_rows():
    class Tokens(nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = nn.Linear(7, 3)

        def forward(self, x):
            return self.proj(x.view(1, 5, 7))

    assert count_macs(Tokens(), None, (1, 35)) == (5 * 7 * 3, 5 * 7 * 3)


def test_unet_macs_agree_with_torch_flop_counter():
    # torch's own FLOP counter (2 FLOPs per MAC) as an independent oracle: its convolution and
    # (add)mm counts are the conv and linear layers; attention's bmm products are not ours to count
    p = parse_params({"data": {"image_size": 8}, "model": {"dim": 8, "dim_mults": [1, 2], "attn_resolutions": [],
                                                           "norm_groups": 4}})
    net = build_unet(p.model, 1, 8).eval()
    t = torch.zeros(1, dtype=torch.long)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        net(torch.zeros(1, 1, 8, 8), t)
    dense, masked = count_macs(net, Mask.dense(net), (1, 1, 8, 8), (t,))
    flops = {str(op): n for op, n in counter.get_flop_counts()["Global"].items()}
    assert flops["aten.bmm"] > 0  # the mid-block attention is there, and excluded below
    oracle = sum(n for op, n in flops.items() if op in ("aten.convolution", "aten.addmm", "aten.mm")) // 2
    assert dense == masked == oracle
    with pytest.raises(ValueError, match="one image"):
        count_macs(net, None, (2, 1, 8, 8), (t,))


def _ticket(sparsity: float, seed: int = 0) -> tuple[dict[str, torch.Tensor], Mask]:
    p = parse_params({"data": {"image_size": 8}, "model": {"dim": 8, "dim_mults": [1, 2], "attn_resolutions": [4],
                                                           "norm_groups": 4}})
    torch.manual_seed(seed)
    net = build_unet(p.model, 1, 8)
    gen = torch.Generator().manual_seed(seed)
    params = dict(net.named_parameters())
    mask = Mask({n: torch.rand(params[n].shape, generator=gen) >= sparsity for n in prunable_names(net)})
    mask.apply_(net)
    state = net.state_dict()
    state["counter"] = torch.arange(5)  # an integer buffer passes through untouched
    return state, mask


def test_compressed_ticket_round_trips_exactly(tmp_path):
    state, mask = _ticket(0.9)
    size = save_compressed_ticket(state, mask, tmp_path / "t.bin")
    assert size == (tmp_path / "t.bin").stat().st_size
    back = load_compressed_ticket(tmp_path / "t.bin")
    assert list(back) == list(state)
    for name, tensor in state.items():
        assert back[name].dtype == tensor.dtype and torch.equal(back[name], tensor), name

    save_compressed_ticket(state, None, tmp_path / "dense.bin")  # no mask: every tensor as it is
    back = load_compressed_ticket(tmp_path / "dense.bin")
    assert all(torch.equal(back[n], t) for n, t in state.items())


def test_compressed_size_shrinks_with_sparsity(tmp_path):
    sizes = {}
    for s in (0.5, 0.9):
        state, mask = _ticket(s)
        sizes[s] = save_compressed_ticket(state, mask, tmp_path / f"{s}.bin")
    dense = torch_save_bytes(state)
    assert sizes[0.9] < sizes[0.5] < dense
    # masked fp32 tensors: 1 bit + (1 - s) x 32 bits per weight instead of 32
    masked_weights = mask.total()
    expected_saving = masked_weights * 4 * (0.9 - 0.5)
    assert sizes[0.5] - sizes[0.9] == pytest.approx(expected_saving, rel=0.05)


def test_compression_refuses_unmasked_pruned_weights(tmp_path):
    state, mask = _ticket(0.5)
    name = mask.names()[0]
    state[name] = state[name] + 1.0  # pruned entries no longer zero: compression would lose them
    with pytest.raises(ValueError, match="non-zero pruned weights"):
        save_compressed_ticket(state, mask, tmp_path / "t.bin")
