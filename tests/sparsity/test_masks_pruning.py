import pytest
import torch
from torch import nn
from torch.nn.utils import prune as torch_prune

from pipeline.sparsity.masks import Mask, prunable_names
from pipeline.sparsity.pruning import layerwise_counts, prune_round, uniform_counts


class Toy(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3)
        self.norm = nn.GroupNorm(2, 4)
        self.conv2 = nn.Conv2d(4, 8, 3)
        self.fc = nn.Linear(32, 10)


@pytest.fixture
def toy():
    torch.manual_seed(0)
    return Toy()


def weights(model):
    return dict(model.named_parameters())


def test_only_conv_and_linear_weights_are_prunable(toy):
    assert prunable_names(toy) == ["conv1.weight", "conv2.weight", "fc.weight"]
    assert prunable_names(toy, exclude=["conv1.*"]) == ["conv2.weight", "fc.weight"]
    mask = Mask.dense(toy)
    assert not any("bias" in n or "norm" in n for n in mask)


@pytest.mark.parametrize("schedule", ["uniform", "global", "lamp", "random", "layerwise"])
def test_every_schedule_removes_uniforms_total_exactly(toy, schedule):
    mask = Mask.dense(toy)
    lw = {"conv1.weight": 0.5, "conv2.weight": 1.0, "fc.weight": 2.0}
    new = prune_round(weights(toy), mask, schedule, 0.3, layer_weights=lw,
                      generator=torch.Generator().manual_seed(1))
    expected_removed = sum(uniform_counts(mask.kept_counts(), 0.3).values())
    assert mask.kept() - new.kept() == expected_removed
    assert new.is_subset_of(mask)


def test_uniform_exact_per_layer_counts(toy):
    mask = Mask.dense(toy)
    new = prune_round(weights(toy), mask, "uniform", 0.25)
    # conv1 36 -> remove 9; conv2 288 -> 72; fc 320 -> 80
    assert new.kept_counts() == {"conv1.weight": 27, "conv2.weight": 216, "fc.weight": 240}
    for n in new:  # the survivors are exactly the largest magnitudes
        w = toy.get_parameter(n).abs().flatten()
        kept = new[n].flatten()
        assert w[kept].min() >= w[~kept].max()


def test_global_matches_torch_global_unstructured(toy):
    mask = Mask.dense(toy)
    ours = prune_round(weights(toy), mask, "global", 0.4)
    amount = mask.kept() - ours.kept()  # our total is uniform's (sum of per-layer roundings)
    assert abs(amount - 0.4 * mask.total()) <= len(mask)
    oracle = Toy()
    oracle.load_state_dict(toy.state_dict())
    torch_prune.global_unstructured([(oracle.conv1, "weight"), (oracle.conv2, "weight"), (oracle.fc, "weight")],
                                    pruning_method=torch_prune.L1Unstructured, amount=amount)
    for name, mod in [("conv1.weight", oracle.conv1), ("conv2.weight", oracle.conv2), ("fc.weight", oracle.fc)]:
        assert torch.equal(ours[name], mod.weight_mask.bool()), name


def test_lamp_scores_keep_per_layer_largest_and_differ_from_global():
    torch.manual_seed(0)
    model = Toy()
    with torch.no_grad():
        model.fc.weight.mul_(0.01)  # a layer of tiny weights: global wipes it, LAMP does not
    mask = Mask.dense(model)
    g = prune_round(weights(model), mask, "global", 0.5)
    lamp = prune_round(weights(model), mask, "lamp", 0.5)
    assert g["fc.weight"].sum() < lamp["fc.weight"].sum()
    for n in lamp:  # within a layer, LAMP's order is magnitude order
        w = model.get_parameter(n).abs().flatten()
        kept = lamp[n].flatten()
        if kept.any() and (~kept).any():
            assert w[kept].min() >= w[~kept].max()


def test_masks_only_shrink_over_rounds_and_reach_target(toy):
    mask = Mask.dense(toy)
    history = [mask]
    for _ in range(4):
        mask = prune_round(weights(toy), mask, "uniform", 0.5)
        history.append(mask)
    for a, b in zip(history[1:], history[:-1]):
        assert a.is_subset_of(b)
    assert abs(mask.sparsity() - (1 - 0.5**4)) < 0.01


def test_pruning_is_bit_identical_for_a_seed(toy):
    mask = Mask.dense(toy)
    for schedule in ("uniform", "global", "lamp", "random"):
        a = prune_round(weights(toy), mask, schedule, 0.6, generator=torch.Generator().manual_seed(3))
        b = prune_round(weights(toy), mask, schedule, 0.6, generator=torch.Generator().manual_seed(3))
        assert all(torch.equal(a[n], b[n]) for n in a), schedule


def test_random_control_keeps_uniform_density_with_other_positions(toy):
    mask = Mask.dense(toy)
    uni = prune_round(weights(toy), mask, "uniform", 0.5)
    rnd = prune_round(weights(toy), mask, "random", 0.5, generator=torch.Generator().manual_seed(0))
    assert uni.kept_counts() == rnd.kept_counts()
    assert any(not torch.equal(uni[n], rnd[n]) for n in uni)


def test_layerwise_counts_conserve_total_and_follow_weights():
    kept = {"a": 1000, "b": 1000, "c": 1000}
    counts = layerwise_counts(kept, {"a": 0.5, "b": 1.0, "c": 2.0}, total=900, max_layer_rate=0.9)
    assert sum(counts.values()) == 900
    assert counts["a"] < counts["b"] < counts["c"]
    # a cap moves the excess to the other layers
    capped = layerwise_counts(kept, {"a": 0.0, "b": 0.0, "c": 1.0}, total=1500, max_layer_rate=0.6)
    assert capped["c"] == 600 and capped["a"] == capped["b"] == 450


def test_mask_state_round_trip_and_report(toy):
    mask = prune_round(weights(toy), Mask.dense(toy), "uniform", 0.5)
    back = Mask.from_state_dict(mask.state_dict())
    assert all(torch.equal(mask[n], back[n]) for n in mask)
    rep = mask.report()
    assert rep["kept"] == mask.kept() and rep["layers"]["fc.weight"] == {"total": 320, "kept": 160, "sparsity": 0.5}


def test_apply_zeroes_exactly_the_pruned_weights(toy):
    mask = prune_round(weights(toy), Mask.dense(toy), "uniform", 0.5)
    before = {n: p.detach().clone() for n, p in toy.named_parameters()}
    mask.apply_(toy)
    for n, p in toy.named_parameters():
        if n in mask:
            assert torch.equal(p[~mask[n]], torch.zeros_like(p[~mask[n]]))
            assert torch.equal(p[mask[n]], before[n][mask[n]])
        else:
            assert torch.equal(p, before[n])
