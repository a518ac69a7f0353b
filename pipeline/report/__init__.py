"""The per-run report, `reports/`, and the comparison across experiments.

- inputs.py:   the metrics files (main chain and controls) and the per-timestep held-out losses
- tables.py:   seed means with spread and interval, summary metrics, the text tables
- verdicts.py: verdict rules (supported / contradicted / inconclusive) from an effect and its interval
- findings.py: one row per claim with effect, interval, test and verdict
- frontier.py: paired comparisons with the shared-noise SE, the convergence check, the sparsest non-inferior ticket
- figures.py:  curves (each seed, mean with interval, controls), cost, noise-scale, layer and sample figures
- render.py:   Markdown and self-contained HTML
- build.py:    writes everything (`build_report`)
- exp_show.py: `dvc exp show --json` read into tables
- compare.py:  `lth-diffusion report compare`: every experiment side by side, the layerwise verdict
- snapshot.py: the README's results block, generated from params.yaml, reports/ and bench/results/
"""
