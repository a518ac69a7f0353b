"""One module per DVC stage, named like the stage: read its inputs, call pipeline/, write its outputs."""
