"""Exact and permutation tests that need no normality: the sign-flip test of per-seed differences,
and a permutation test whose labels move only within strata (layers are not exchangeable across types).

The sign-flip test is scipy's `permutation_test` with `permutation_type='samples'` on one sample
(each observation's sign flipped independently); for n <= EXACT_MAX_N it enumerates all 2**n patterns,
so its p-value is exact and can never go below `min_p(n)` = 2 / 2**n (two-sided).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import numpy as np
from scipy import stats

EXACT_MAX_N = 16
ALTERNATIVES = ("two-sided", "greater", "less")


def min_p(n: int, alternative: str = "two-sided") -> float:
    """The smallest p-value an exact sign-flip test over n observations can return: 2 / 2**n
    two-sided (all signs agree, either way), 1 / 2**n one-sided."""
    if n < 1:
        return math.nan
    return (2.0 if alternative == "two-sided" else 1.0) / 2.0 ** n


@dataclass(frozen=True)
class TestResult:
    statistic: float
    p: float
    resamples: int      # sign patterns / permutations the null distribution was built from
    exact: bool         # True when every pattern was enumerated
    rule: str


def _check_alternative(alternative: str) -> None:
    if alternative not in ALTERNATIVES:
        raise ValueError(f"alternative must be one of {ALTERNATIVES}, got {alternative!r}")


def sign_flip_test(diffs: Sequence[float], *, alternative: str = "two-sided", null: float = 0.0,
                   n_resamples: int = 9999, seed: int = 0) -> TestResult:
    """Sign-flip test of H0: the per-seed differences `diffs` are symmetric about `null`, with the
    mean as statistic. Exact (all 2**n sign patterns) for n <= EXACT_MAX_N, else `n_resamples`
    random patterns from a generator seeded by `seed`. 'greater' tests mean > null."""
    _check_alternative(alternative)
    d = np.asarray(diffs, dtype=np.float64) - null
    n = d.size
    if n == 0 or not np.all(np.isfinite(d)):
        return TestResult(math.nan, math.nan, 0, False, "sign-flip test: no (finite) differences")
    exact = n <= EXACT_MAX_N
    if n == 1:  # scipy wants two observations; the null distribution is {d, −d}
        obs = float(d[0])
        ge, le = (1.0 if obs <= 0 else 0.5), (1.0 if obs >= 0 else 0.5)
        p = {"greater": ge, "less": le, "two-sided": 1.0}[alternative]
        return TestResult(obs + null, p, 2, True, f"sign-flip test ({alternative}) of 1 difference, exact "
                          f"over its 2 sign patterns; smallest attainable p = {min_p(1, alternative):.3g}")
    res = stats.permutation_test((d,), lambda x, axis: np.mean(x, axis=axis), vectorized=True,
                                 permutation_type="samples", alternative=alternative,
                                 n_resamples=np.inf if exact else n_resamples,
                                 random_state=np.random.default_rng(seed))
    count = 2 ** n if exact else n_resamples
    kind = f"exact over all 2^{n} = {count} sign patterns" if exact else f"{count} random sign patterns"
    rule = (f"sign-flip test ({alternative}) of the mean of {n} per-seed differences, {kind}; "
            f"smallest attainable p = {min_p(n, alternative):.3g}")
    return TestResult(float(d.mean() + null), float(res.pvalue), count, exact, rule)


def _mean_difference(values: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """mean(values where label) − mean(values where not label), one per row of `labels` (B, m)."""
    lab = labels.astype(np.float64)
    k = lab.sum(1)
    return (lab @ values) / k - ((1 - lab) @ values) / (values.size - k)


def arrangements(labels: Sequence, strata: Sequence) -> int:
    """How many distinct labelings a within-strata permutation can produce (the product over strata
    of the multinomial coefficients of each stratum's labels)."""
    labels, strata = np.asarray(labels), np.asarray(strata)
    total = 1
    for s in np.unique(strata):
        _, counts = np.unique(labels[strata == s], return_counts=True)
        ways = math.factorial(int(counts.sum()))
        for c in counts:
            ways //= math.factorial(int(c))
        total *= ways
    return total


def stratified_permutation_test(values: Sequence[float], labels: Sequence, strata: Sequence, *,
                                statistic: Optional[Callable[[np.ndarray, np.ndarray], np.ndarray]] = None,
                                alternative: str = "two-sided", n_resamples: int = 9999,
                                seed: int = 0) -> TestResult:
    """Permutation test of H0: within each stratum (e.g. layer type: 3x3 conv, 1x1 skip conv,
    attention, linear) the labels (e.g. upstream/downstream half) are exchangeable over the values.

    Labels are shuffled only among the items of the same stratum, so every stratum keeps its label
    counts (a stratum whose items all carry one label never moves). `statistic(values, labels)` takes
    labels of shape (B, m) and returns (B,); the default, for boolean labels, is
    mean(values[label]) − mean(values[~label]). Monte Carlo with `n_resamples` shuffles from a
    generator seeded by `seed`; p = (1 + #{T* at least as extreme}) / (1 + n_resamples), two-sided as
    twice the smaller tail (the null distribution need not be centred at 0 when strata differ).
    """
    _check_alternative(alternative)
    x = np.asarray(values, dtype=np.float64)
    lab = np.asarray(labels)
    st = np.asarray(strata)
    if not (x.shape == lab.shape == st.shape) or x.ndim != 1:
        raise ValueError("values, labels and strata must be 1-D and of equal length")
    stat = statistic or _mean_difference
    if statistic is None:
        lab = lab.astype(bool)
        if lab.all() or not lab.any():
            raise ValueError("the default statistic needs both labels present")
    observed = float(stat(x, lab[None, :])[0])
    rng = np.random.default_rng(seed)
    perm = np.tile(np.arange(x.size), (n_resamples, 1))
    for s in np.unique(st):
        where = np.flatnonzero(st == s)
        if where.size > 1:
            order = np.argsort(rng.random((n_resamples, where.size)), axis=1)
            perm[:, where] = where[order]
    null = np.asarray(stat(x, lab[perm]), dtype=np.float64)
    tol = 1e-12 * max(1.0, abs(observed))
    ge = (1 + np.count_nonzero(null >= observed - tol)) / (1 + n_resamples)
    le = (1 + np.count_nonzero(null <= observed + tol)) / (1 + n_resamples)
    p = {"greater": ge, "less": le, "two-sided": min(1.0, 2 * min(ge, le))}[alternative]
    n_strata = len(np.unique(st))
    rule = (f"permutation test ({alternative}) with labels shuffled within {n_strata} strata, "
            f"{n_resamples} random shuffles of {arrangements(lab, st):.3g} possible arrangements")
    return TestResult(observed, float(p), n_resamples, False, rule)
