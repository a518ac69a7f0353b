"""The dense baseline's convergence check: paired, equivalence-style, every seed."""
import numpy as np
import pytest

from pipeline.report import text as T
from pipeline.stats.convergence import (CONVERGED, NOT_CONVERGED, dense_convergence,
                                        dense_convergence_over_seeds)

N = 400


def curve(seed, decay, noise=0.002, steps=(500, 750, 1000)):
    """Per-item held-out losses: an item effect shared by all checkpoints (paired), a mean that falls by
    `decay` (relative) per checkpoint, and independent per-checkpoint noise."""
    rng = np.random.default_rng(seed)
    item = rng.gamma(4.0, 0.015, N)
    return {s: item * (1 + decay) ** (len(steps) - 1 - i) + rng.normal(0, noise, N) for i, s in enumerate(steps)}


def test_a_still_decreasing_loss_is_not_converged():
    c = dense_convergence(curve(1, 0.03), tolerance=0.01)
    assert not c.converged and c.status == NOT_CONVERGED
    assert (c.step_from, c.step_to) == (750, 1000)
    assert c.relative_improvement == pytest.approx(0.03, abs=0.005)
    assert c.low < c.improvement < c.high
    assert T.convergence_sentence(c).startswith("dense baseline not converged") and f"{100 * c.relative_improvement:.2f} %" in T.convergence_sentence(c)


def test_a_flat_loss_is_converged():
    c = dense_convergence(curve(2, 0.0), tolerance=0.01)
    assert c.converged and c.status == CONVERGED
    assert c.relative_high < 0.01
    assert T.convergence_sentence(c).startswith("dense baseline converged")


def test_noise_alone_does_not_make_a_run_converged():
    # flat on average but so noisy that a 1 % improvement cannot be excluded: not converged
    rng = np.random.default_rng(3)
    final = rng.gamma(4.0, 0.015, N)
    z = rng.normal(0, 0.05, N)
    c = dense_convergence({750: final + (z - z.mean()), 1000: final}, tolerance=0.01)
    assert c.improvement == pytest.approx(0.0, abs=1e-12)  # no improvement at all on average ...
    assert c.low < 0 < c.high and c.relative_high > 0.01  # ... but 1 % cannot be excluded
    assert not c.converged


def test_pairing_is_what_resolves_the_change():
    # the item effect dominates: unpaired it would swamp a 0.3 % change; paired, the check sees it as small
    c = dense_convergence(curve(4, 0.003, noise=0.0005), tolerance=0.01)
    assert c.converged and c.low > 0


def test_since_picks_the_earlier_checkpoint_and_curve_lists_every_step():
    cps = curve(5, 0.03)
    c = dense_convergence(cps, since=500)
    assert c.step_from == 500 and c.relative_improvement == pytest.approx(1.03 ** 2 - 1, abs=0.01)
    assert [s for s, _, _ in c.curve] == [500, 750, 1000]
    with pytest.raises(ValueError):
        dense_convergence(cps, since=600)


def test_items_must_be_the_same_on_every_checkpoint():
    with pytest.raises(ValueError):
        dense_convergence({1: np.ones(5), 2: np.ones(6)})
    with pytest.raises(ValueError):
        dense_convergence({1: np.ones(5)})


def test_over_seeds_every_seed_must_be_converged():
    ok = dense_convergence_over_seeds({1: curve(6, 0.0), 2: curve(7, 0.0)})
    assert ok.converged and ok.n_converged == 2 and "all 2 seeds" in T.seeds_convergence_sentence(ok)
    bad = dense_convergence_over_seeds({1: curve(6, 0.0), 2: curve(7, 0.03), 3: curve(8, 0.0)})
    assert not bad.converged and bad.n_converged == 2
    assert T.seeds_convergence_sentence(bad).startswith("dense baseline not converged in 1 of 3 seeds") and "seed 2" in T.seeds_convergence_sentence(bad)
    assert not bad.seed(2).converged and bad.seed(1).converged


def test_a_non_converged_baseline_makes_the_frontier_provisional():
    from pipeline.report.text import PROVISIONAL
    from pipeline.stats.frontier import RoundInterval, relative_margin, sparsest_non_inferior

    bad = dense_convergence_over_seeds({1: curve(9, 0.03)})
    f = sparsest_non_inferior([RoundInterval(1, 0.5, 0.49, 0.0, 0.5)], relative_margin(0.1, 15.0),
                              baseline_converged=bad)
    assert f.provisional and T.frontier_sentence(f).startswith(PROVISIONAL)
