"""DVC stage 'layer_rates'. Usage: python -m stages.layer_rates"""
from pipeline.stage_runner import run_stage
from pipeline.study_similarity import run_layer_rates

if __name__ == "__main__":
    run_stage(run_layer_rates)
