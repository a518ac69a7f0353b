"""DVC stage 'similarity'. Usage: python -m stages.similarity"""
from pipeline.stage_runner import run_stage
from pipeline.study_similarity import run_similarity

if __name__ == "__main__":
    run_stage(run_similarity)
