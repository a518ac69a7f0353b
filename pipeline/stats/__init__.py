"""Inference behind every interval, test and verdict: pure numpy/scipy, no torch, no project imports.

- paired.py:      one standard-error model for comparisons over seeds with common random numbers
- exact.py:       sign-flip and within-strata permutation tests, the smallest p n seeds can reach
- pairs.py:       similarity statistics with the ticket pair as the unit (U-statistic, jackknife), the magnitude null
- frontier.py:    the sparsest non-inferior ticket by a fixed sequence of tests, margins, schedule ranking
- convergence.py: is the dense baseline converged (paired held-out loss at checkpoints)
"""
