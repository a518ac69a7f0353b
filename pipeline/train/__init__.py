"""Training.

- loop.py:   the training loop shared by dense runs and masked retrains (mask enforced in one step)
- recipe.py: the study's recipe from params: fingerprints, masked retrain, writing the outputs
"""
