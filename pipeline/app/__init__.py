"""The top layer: how a person or DVC starts work.

- cli.py:       the `lth-diffusion` command
- stage.py:     `run_stage`, the entry glue of stages/: params, arguments, one-line errors and exit codes
- params.py:    params with every rule, the U-Net-shape ones included (check, repro)
- estimate.py:  the run time `check` prints: the stage plan times per-unit costs measured here
- deps.py:      each stage's code deps (its module's import closure), checked against dvc.yaml
- dag.py:       what `dvc repro` would run, from DVC's graph and status, as a plan to schedule
- runner.py:    runs a plan on an executor's slots in DAG order; failures stop only their descendants
- executors.py: where a stage runs: local worker processes, or SLURM/local jobs through submitit
- live.py:      the runner's live view (a terminal) or event lines (logs)
- parallel.py:  `lth-diffusion repro -j N`: workers and their share of the machine, plan, run, summary
"""
