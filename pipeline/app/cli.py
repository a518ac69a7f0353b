"""`lth-diffusion`: the command line around the DVC pipeline."""
from __future__ import annotations

import subprocess
from pathlib import Path
from typing import List, Optional

import typer

from pipeline.core.config import ConfigError
from pipeline.core.errors import ArtifactError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Lottery-ticket winning tickets in diffusion U-Nets, as a DVC pipeline (run it with `dvc repro`).")
report_app = typer.Typer(no_args_is_help=True, help="Reports across runs and experiments.")
app.add_typer(report_app, name="report")


def _fail(err: Exception) -> None:
    typer.echo(f"error: {err}", err=True)
    raise typer.Exit(2)


def _git(*args: str, cwd: Path) -> str | None:
    try:
        proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def detached_head_warning(cwd: Path) -> str | None:
    """One line when the workspace's git HEAD is detached, as an interrupted `dvc exp run` leaves it."""
    if _git("rev-parse", "--is-inside-work-tree", cwd=cwd) != "true":
        return None
    if _git("symbolic-ref", "-q", "HEAD", cwd=cwd) is not None:
        return None
    at = _git("rev-parse", "--short", "HEAD", cwd=cwd) or "?"
    # dvc exp run records the branch it started from while it runs
    branch = (_git("symbolic-ref", "--short", "-q", "refs/exps/exec/EXEC_BRANCH", cwd=cwd) or "main")
    branch = branch.removeprefix("heads/")
    return (f"warning: git HEAD is detached at {at} (an interrupted `dvc exp run` leaves it so); get back with "
            f"`git checkout {branch}`, and keep an experiment's results with `dvc exp apply <exp>` "
            f"or `dvc exp branch <exp> <new-branch>` (see README, When something goes wrong: "
            f"Recovering from an interrupted `dvc exp run`)")


@app.command()
def check(params: Path = typer.Argument(Path("params.yaml"), help="params file to validate")) -> None:
    """Validate a params file and print what the study will do."""
    from pipeline.app.params import load_params

    try:
        p = load_params(params)
    except ConfigError as err:
        _fail(err)
    import torch

    from pipeline.sparsity.tickets import new_model
    from pipeline.sparsity.masks import Mask

    with torch.device("meta"):  # shapes only: no memory, whatever the size
        model = new_model(p)
    mask = Mask.dense(model, p.sparsity.include, p.sparsity.exclude)
    n = sum(t.numel() for t in model.parameters())
    warning = detached_head_warning(params.resolve().parent)
    if warning:
        typer.echo(warning, err=True)
    from pipeline.data.naming import data_name
    from pipeline.data.sources import missing_data

    problem = missing_data(p.data)
    if problem:
        _fail(ValueError(f"{params}: {problem}"))
    typer.echo(f"{params}: ok ({stage_count(p)} DVC stages)")
    typer.echo(f"  data      {data_name(p.data)} ({p.data.dataset})")
    typer.echo(f"  model     {n:,} parameters, {mask.total():,} prunable in {len(mask)} tensors")
    typer.echo(f"  imp       seeds {list(p.imp.seeds)}, {len(p.imp.rounds)} rounds of {p.sparsity.rate:.0%} "
               f"({p.sparsity.schedule}) -> {p.target_sparsity:.2%} sparsity; rewind {p.rewind.mode}"
               + (f" to step {p.rewind.step}" if p.rewind.mode == "checkpoint" else ""))
    typer.echo(f"  training  {p.train.steps} dense steps, {p.retrain_steps()} per retrain, batch {p.train.batch_size}")
    typer.echo(f"  eval      FID/KID with {p.eval.feature_extractor}, {p.eval.num_samples} samples, "
               f"DDIM-{p.eval.sampling_steps}, seeds {list(p.imp.seeds)}")
    kinds = ", ".join(p.controls.kinds)
    typer.echo(f"  controls  {kinds or 'none'}" + (f" for rounds {list(p.controls.rounds)} of every seed"
                                                   if kinds and p.controls.rounds else " (controls.rounds is empty)"
                                                   if kinds else ""))
    typer.echo(f"  time      {run_time(p, model)}")


def run_time(p, model) -> str:
    """The estimated run time on this machine's CPUs (pipeline.app.estimate), from the model's MACs."""
    import torch

    from pipeline.app import estimate as E
    from pipeline.evaluate.cost import count_macs

    shape = (1, p.data.channels, p.data.image_size, p.data.image_size)
    macs, _ = count_macs(model, None, shape, (torch.zeros(1, device="meta"),))  # shapes only, on 'meta'
    return E.line(E.estimate(p, stage_count(p), macs))


def stage_count(p) -> int:
    """The stages dvc.yaml expands to under these params."""
    seeds, rounds = len(p.imp.seeds), len(p.imp.rounds)
    controls = len(p.controls.kinds) * seeds * len(p.controls.rounds)
    # prepare, init, features, reference, layer_rates, similarity, report; per seed dense, eval_dense;
    # per seed and round prune, rewind, retrain, eval; per control its training and its eval
    # and per budget seed dense_budget, retrain_budget, eval_budget
    return 7 + 2 * seeds + 4 * seeds * rounds + 2 * controls + 3 * len(p.budget.seeds)


EXECUTORS = ("local", "slurm", "submitit-local")


@app.command()
def repro(targets: Optional[List[str]] = typer.Argument(None, help="stages to bring up to date, with what they "
                                                                   "depend on (default: all, as `dvc repro`)"),
          jobs: str = typer.Option("auto", "--jobs", "-j", help="stages at once: a number, or auto (one per GPU, "
                                                                   "else one per core, at most the DAG's width)"),
          executor: str = typer.Option("local", help="local: worker processes here; slurm: one SLURM job per "
                                                     "stage (submitit, params cluster:); submitit-local: "
                                                     "submitit's local executor"),
          threads: Optional[int] = typer.Option(None, min=1, help="CPU threads per stage (default: cores / jobs)"),
          force: bool = typer.Option(False, "--force", "-f", help="run every stage, changed or not (dvc repro -f)"),
          dry: bool = typer.Option(False, "--dry", help="print the plan and exit"),
          root: Path = typer.Option(Path("."), help="the DVC workspace")) -> None:
    """Run every stage that `dvc repro` would run, in DAG order, up to --jobs at a time, each through
    `dvc repro -s` (so dvc.lock, the cache and early cutoff stay DVC's)."""
    from pipeline.app import parallel

    if executor not in EXECUTORS:
        _fail(ValueError(f"--executor {executor!r}: expected one of {', '.join(EXECUTORS)}"))
    try:
        code = parallel.repro(root.resolve(), targets or [], jobs=jobs, executor=executor, threads=threads,
                              force=force, dry=dry)
    except (ConfigError, ValueError, RuntimeError) as err:
        _fail(err)
    raise typer.Exit(code)


@app.command()
def deps(write: bool = typer.Option(False, help="rewrite dvc.yaml's code deps to the stages' import closures"),
         root: Path = typer.Option(Path("."), help="repository root")) -> None:
    """Check that each stage's code deps in dvc.yaml are exactly its module's import closure."""
    from pipeline.app import deps as D

    if write:
        changed = D.write(root)
        typer.echo(f"dvc.yaml: code deps rewritten for {', '.join(changed) if changed else 'no stage'}")
        return
    diff = D.differences(root)
    for stage, (missing, extra) in diff.items():
        typer.echo(f"{stage}: missing {missing or '-'}; never imported {extra or '-'}")
    if diff:
        typer.echo("run `lth-diffusion deps --write` to fix dvc.yaml", err=True)
        raise typer.Exit(1)
    typer.echo("dvc.yaml: every stage's code deps are its import closure")


@app.command()
def readme(write: bool = typer.Option(False, help="rewrite the README's results block"),
           root: Path = typer.Option(Path("."), help="repository root")) -> None:
    """Check (or --write) the README's results snapshot against params.yaml, reports/ and bench/results/."""
    from pipeline.core.config import load_params
    from pipeline.report import snapshot
    from pipeline.sparsity.rules import meta_unet

    try:
        p = load_params(root / "params.yaml")
    except ConfigError as err:
        _fail(err)
    n = sum(t.numel() for t in meta_unet(p.model, p.data.channels, p.data.image_size).parameters())
    path = root / "README.md"
    text = path.read_text()
    block = snapshot.snapshot(root, n)
    try:
        new = snapshot.rewrite(text, block)
    except ValueError as err:
        _fail(err)
    if new == text:
        typer.echo("README.md: the results block matches params.yaml, reports/ and bench/results/")
        return
    if write:
        path.write_text(new)
        typer.echo("README.md: results block rewritten")
        return
    typer.echo("README.md: the results block disagrees with params.yaml, reports/ or bench/results/; "
               "run `lth-diffusion readme --write`", err=True)
    raise typer.Exit(1)


@report_app.command("compare")
def report_compare(out: Path = typer.Option(Path("reports/compare"), help="output folder"),
                   split_extractors: bool = typer.Option(
                       False, help="when runs used different FID extractors, compare each extractor's runs apart "
                                   "instead of refusing"),
                   force: bool = typer.Option(False, help="overwrite a report built from more runs with one built "
                                                          "from fewer")) -> None:
    """Draw the workspace and every DVC experiment (e.g. uniform vs layerwise) on shared plots, with the
    spread over seeds and a verdict on the layerwise claim."""
    from pipeline.report.compare import compare

    try:
        paths = compare(out_dir=out, split_extractors=split_extractors, force=force)
    except (ConfigError, ArtifactError) as err:
        _fail(err)
    for path in paths:
        typer.echo(str(path))


if __name__ == "__main__":
    app()
