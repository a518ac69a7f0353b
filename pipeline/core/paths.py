"""Where an artifact path is defined: every artifact's place under a root (default `artifacts/`, as the
stages run it; the report reads a run under any root), and the patterns that read a path back (which
stage wrote it: `core.errors.stage_for`; which run a metrics file is: `report.exp_show`, `report.inputs`).
How a ticket is saved is `pipeline.sparsity.tickets`.

Round 0 is the dense run of a seed; round k >= 1 is the k-th IMP round. Each stage writes its own
folder (DVC outputs must not overlap): r{k}/prune, r{k}/rewind, r{k}/train. Controls of round k
(a ticket's mask re-drawn, or a random mask of its per-layer counts) live beside the chain under
controls/{kind}/s{seed}/r{k}/ and never feed it.
"""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path("artifacts")

# the layout, relative to the root; {seed}, {k} and {kind} are filled in (or matched, by `pattern`)
LAYOUT = {
    "data": "data",
    "init": "init",
    "train": "imp/s{seed}/r{k}/train",
    "prune": "imp/s{seed}/r{k}/prune",
    "rewind": "imp/s{seed}/r{k}/rewind",
    "checkpoint": "checkpoints/s{seed}-r{k}.pt",
    "eval": "eval/s{seed}/r{k}",
    "features": "features",
    "reference": "reference",
    "layer_rates": "layer_rates",
    "control": "controls/{kind}/s{seed}/r{k}",
    "control_checkpoint": "checkpoints/control-{kind}-s{seed}-r{k}.pt",
    "control_eval": "eval/controls/{kind}/s{seed}/r{k}",
    "similarity": "similarity",
    "budget_train": "budget/s{seed}/r{k}/train",
    "budget_eval": "eval/budget/s{seed}/r{k}",  # under eval/: the report reads it with the other evals
    "budget_checkpoint": "checkpoints/budget-s{seed}-r{k}.pt",
}
_FIELD = {"seed": r"(?P<seed>\d+)", "k": r"(?P<k>\d+)", "kind": r"(?P<kind>[^/]+)"}


def _at(name: str, root: Path, **fields) -> Path:
    return Path(root) / LAYOUT[name].format(**fields)


def pattern(name: str, tail: str = "", **fixed) -> str:
    """A regex (for re.fullmatch, relative to the root) of `name`'s path followed by `tail` (a regex,
    e.g. "/.*" for anything inside): {seed}, {k} and {kind} become named groups unless `fixed` gives
    their value."""
    parts = re.split(r"(\{\w+\})", LAYOUT[name])
    out = "".join(re.escape(str(fixed[p[1:-1]])) if p[1:-1] in fixed else _FIELD[p[1:-1]]
                  if p.startswith("{") else re.escape(p) for p in parts)
    return out + tail


def data_dir(root: Path = ROOT) -> Path:
    """The prepare stage's decoded dataset (pipeline.data.prepared)."""
    return _at("data", root)


def prepared_path(split: str, root: Path = ROOT) -> Path:
    """`split` ('train' or 'heldout') of the prepared dataset."""
    return data_dir(root) / f"{split}.pt"


def init_dir(root: Path = ROOT) -> Path:
    return _at("init", root)


def train_dir(seed: int, k: int, root: Path = ROOT) -> Path:
    return _at("train", root, seed=seed, k=k)


def prune_dir(seed: int, k: int, root: Path = ROOT) -> Path:
    return _at("prune", root, seed=seed, k=k)


def rewind_dir(seed: int, k: int, root: Path = ROOT) -> Path:
    return _at("rewind", root, seed=seed, k=k)


def checkpoint_path(seed: int, k: int, root: Path = ROOT) -> Path:
    # not a DVC output (dvc.yaml says why), so a killed dense or retrain stage resumes from here
    return _at("checkpoint", root, seed=seed, k=k)


def eval_dir(seed: int, k: int, root: Path = ROOT) -> Path:
    return _at("eval", root, seed=seed, k=k)


def features_dir(root: Path = ROOT) -> Path:
    return _at("features", root)


def classifier_path(root: Path = ROOT) -> Path:
    return features_dir(root) / "classifier.pt"


def reference_dir(root: Path = ROOT) -> Path:
    return _at("reference", root)


def layer_rates_path(root: Path = ROOT) -> Path:
    return _at("layer_rates", root) / "rates.json"


def schedule_rates_path(schedule: str, root: Path = ROOT) -> Path:
    """What prune under `schedule` needs from the layer_rates stage. One file per schedule, so the
    schedules that need nothing (all but layerwise) depend on a file that never changes."""
    return _at("layer_rates", root) / "schedule" / f"{schedule}.json"


def control_dir(kind: str, seed: int, k: int, root: Path = ROOT) -> Path:
    """Start weights, mask and train/ of the `kind` control of seed `seed`'s round-k ticket."""
    return _at("control", root, kind=kind, seed=seed, k=k)


def control_train_dir(kind: str, seed: int, k: int, root: Path = ROOT) -> Path:
    return control_dir(kind, seed, k, root) / "train"


def control_checkpoint_path(kind: str, seed: int, k: int, root: Path = ROOT) -> Path:
    return _at("control_checkpoint", root, kind=kind, seed=seed, k=k)


def control_eval_dir(kind: str, seed: int, k: int, root: Path = ROOT) -> Path:
    return _at("control_eval", root, kind=kind, seed=seed, k=k)


def similarity_dir(root: Path = ROOT) -> Path:
    return _at("similarity", root)


def budget_train_dir(seed: int, k: int, root: Path = ROOT) -> Path:
    """Seed `seed`'s round-k net (0: dense) trained at budget.factor x train.steps."""
    return _at("budget_train", root, seed=seed, k=k)


def budget_eval_dir(seed: int, k: int, root: Path = ROOT) -> Path:
    return _at("budget_eval", root, seed=seed, k=k)


def budget_checkpoint_path(seed: int, k: int, root: Path = ROOT) -> Path:
    return _at("budget_checkpoint", root, seed=seed, k=k)
