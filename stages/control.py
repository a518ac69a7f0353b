"""DVC stage 'control'. Usage: python -m stages.control <kind> <seed> <k>"""
from pipeline.controls import run_control
from pipeline.stage_runner import run_stage

if __name__ == "__main__":
    run_stage(run_control, "seed", "k", text=("kind",))
