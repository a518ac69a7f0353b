"""The per-run report, `reports/`, and the comparison across experiments.

- inputs.py:        the metrics files (main chain and controls) and the per-timestep held-out losses
- fid_intervals.py: where a FID interval over seeds is computed (mean FID, FID∞, ΔFID of two run types)
- tables.py:        seed means with spread and interval, summary metrics, the text tables
- text.py:          every sentence about a statistic (frontier, layerwise, convergence, similarity) and the rules
- findings.py:      one row per claim with effect, interval, test and verdict
- frontier.py:      the paired held-out loss, the convergence check, the sparsest non-inferior ticket of the run
- figures.py:       curves (each seed, mean with interval, controls), cost, noise-scale, layer and sample figures
- paper.py:         the paper-style table: sparsity × FID mean [interval] per schedule and control, MACs, storage
- headline.py:      reports/headline.json, the few numbers a reader compares across runs
- render.py:        Markdown and self-contained HTML
- build.py:         writes everything (`build_report`)
- exp_show.py:      `dvc exp show --json` read into tables
- compare.py:       `lth-diffusion report compare`: every experiment side by side, the layerwise verdict
- budget_inputs.py: the budget check's FIDs at T and at budget.factor x T, and its evidence
- compare_runs.py:  the runs behind reports/compare/ kept in the repository, so a clone rebuilds it
- compare_paired.py: layerwise vs uniform at equal sparsity: paired ΔFID per round, Holm over rounds
- snapshot.py:      the README's results block, generated from params.yaml, reports/ and bench/results/
"""
