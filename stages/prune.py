"""DVC stage 'prune'. Usage: python -m stages.prune <seed> <k>"""
from pipeline.stage_runner import run_stage
from pipeline.study import run_prune

if __name__ == "__main__":
    run_stage(run_prune, "seed", "k")
