"""DVC stage 'reference'. Usage: python -m stages.reference"""
from pipeline.stage_runner import run_stage
from pipeline.study_eval import run_reference

if __name__ == "__main__":
    run_stage(run_reference)
