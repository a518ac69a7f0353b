"""The top layer: how a person or DVC starts work.

- cli.py:    the `lth-diffusion` command
- stage.py:  `run_stage`, the entry glue of stages/: params, arguments, one-line errors and exit codes
- params.py: params with every rule, the U-Net-shape ones included
- deps.py:   each stage's code deps (its module's import closure), checked against dvc.yaml
"""
