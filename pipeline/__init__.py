"""lth-diffusion's library. Subpackages by concern, in layer order: each imports only from the
ones before it (checked by tests/app/test_layers.py), and stages/ sits above them all.

- core/:       config (typed params), errors, io (atomic, byte-stable writes), paths (where artifacts live)
- stats/:      inference behind every interval, test and verdict (pure numpy/scipy)
- runtime/:    distributed ranks, torch.compile, device and threads
- ddpm/:       the U-Net, Gaussian diffusion and samplers, the training images
- sparsity/:   masks, pruning schedules, rewinding, controls, ticket files, the params rules that need layer shapes
- train/:      the training loop, the study's training recipe
- evaluate/:   FID/KID, intervals, feature extractors, reference statistics, cost, images, a net's evaluation
- similarity/: per-layer agreement of tickets, claims with intervals, figures
- report/:     the per-run report, its text, the across-experiments comparison
- app/:        the command line, stage entry glue, params with every rule, code deps of the stages

Where is it?
- a verdict decided:        stats/verdicts.py
- a FID interval computed:  report/fid_intervals.py (over seeds; one run's own: evaluate/intervals.py)
- an artifact path defined: core/paths.py
- a sentence of the report: report/text.py
"""
