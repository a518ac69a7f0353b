"""DVC stage 'eval'. Usage: python -m stages.eval <seed> <k>"""
from pipeline.stage_runner import run_stage
from pipeline.study_eval import run_eval

if __name__ == "__main__":
    run_stage(run_eval, "seed", "k", data_parallel=True)
