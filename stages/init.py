"""DVC stage 'init'. Usage: python -m stages.init"""
from pipeline.stage_runner import run_stage
from pipeline.study import run_init

if __name__ == "__main__":
    run_stage(run_init)
