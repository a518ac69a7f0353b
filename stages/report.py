"""DVC stage 'report'. Usage: python -m stages.report"""
from pipeline.stage_runner import run_stage
from pipeline.report import run_report

if __name__ == "__main__":
    run_stage(run_report)
