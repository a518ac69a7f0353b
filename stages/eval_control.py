"""DVC stage 'eval_control'. Usage: python -m stages.eval_control <kind> <seed> <k>"""
from pipeline.stage_runner import run_stage
from pipeline.study_eval import run_eval_control

if __name__ == "__main__":
    run_stage(run_eval_control, "seed", "k", text=("kind",))
