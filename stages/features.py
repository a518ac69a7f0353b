"""DVC stage 'features'. Usage: python -m stages.features"""
from pipeline.stage_runner import run_stage
from pipeline.study_eval import run_features

if __name__ == "__main__":
    run_stage(run_features)
