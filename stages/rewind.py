"""DVC stage 'rewind'. Usage: python -m stages.rewind <seed> <k>"""
from pipeline.stage_runner import run_stage
from pipeline.study import run_rewind

if __name__ == "__main__":
    run_stage(run_rewind, "seed", "k")
