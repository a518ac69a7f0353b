"""DVC stage 'report': findings with computed verdicts, tables with intervals, figures and a
self-contained HTML page in reports/.

Usage: python -m stages.report
"""
from __future__ import annotations

from pipeline.app.stage import run_stage
from pipeline.core.config import Params
from pipeline.report.build import build_report


def run_report(params: Params) -> None:
    for path in build_report(params):
        print(f"report: wrote {path}")


if __name__ == "__main__":
    run_stage(run_report)
