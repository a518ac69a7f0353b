"""Training.

- loop.py:   the training loop shared by dense runs and masked retrains (mask enforced in one step)
- resume.py: resumable state: what a checkpoint holds, when a run picks it up, how it is written
- recipe.py: the study's recipe from params: fingerprints, masked retrain, writing the outputs
"""
