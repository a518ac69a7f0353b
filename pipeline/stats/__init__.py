"""Inference behind every interval, test and verdict: pure numpy/scipy, no torch, numbers and statuses
(the sentences are pipeline/report/text.py's).

- verdicts.py:    where a verdict is decided: the verdict words, superiority, THE non-inferiority boundary,
                  the fixed sequence, the layerwise rule
- tdist.py:       the one Student-t quantile helper, the plain t-interval over seeds, the cut of an interval at a bound
- paired.py:      one standard-error model for comparisons over seeds with common random numbers
- exact.py:       the one sign-flip test and the within-strata permutation test, the smallest p n seeds can reach
- pairs.py:       similarity statistics with the ticket pair as the unit (U-statistic, jackknife), the magnitude null
- frontier.py:    one run's sparsest non-inferior ticket by a fixed sequence of tests: per seed, over seeds, across margins
- ranking.py:     across schedules: each one's frontier with its cost, the ranking, the layerwise verdict
- logscale.py:    FID effects as ratios: geometric means and log-ratio intervals over seeds
- multiplicity.py: Holm's adjustment over the family of secondary claims
- budget.py:      the primary claim at T and at budget.factor x T: is its verdict budget-stable
- convergence.py: is the dense baseline converged (paired held-out loss at checkpoints)
"""
