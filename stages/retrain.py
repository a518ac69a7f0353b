"""DVC stage 'retrain'. Usage: python -m stages.retrain <seed> <k>"""
from pipeline.stage_runner import run_stage
from pipeline.study import run_retrain

if __name__ == "__main__":
    run_stage(run_retrain, "seed", "k", data_parallel=True)
