"""The per-run report, `reports/`, by concern:

- inputs:   the metrics files (main chain and controls) and the per-timestep held-out losses
- tables:   seed means with spread and interval, summary metrics, the text tables
- findings: one row per claim with effect, interval, test and verdict (rules in pipeline.verdicts)
- figures:  curves (each seed, mean with interval, controls), cost, noise-scale, layer and sample figures
- render:   Markdown and self-contained HTML
- build:    writes everything (`build_report`, the DVC stage's `run_report`)
"""
from .build import build_report, run_report
from .figures import log_axis_plain, macs_unit, sparsity_axis
from .inputs import load_eval_table
from .render import png_data_uri
from .tables import sparsest_within_tolerance

__all__ = ["build_report", "run_report", "load_eval_table", "png_data_uri", "sparsest_within_tolerance",
           "log_axis_plain", "macs_unit", "sparsity_axis"]
