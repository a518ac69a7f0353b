"""DVC stage 'dense'. Usage: python -m stages.dense <seed>"""
from pipeline.stage_runner import run_stage
from pipeline.study import run_dense

if __name__ == "__main__":
    run_stage(run_dense, "seed", data_parallel=True)
