"""Typed, validated view of params.yaml.

Every stage reads its numbers through `load_params`, so a bad value stops the run before any
compute with one line naming the key, the value and what is allowed (`ConfigError`).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

DATASETS = ("mnist5k", "mnist", "cifar10", "cifar100")
SCHEDULES = ("uniform", "global", "lamp", "layerwise", "random")
REWIND_MODES = ("init", "checkpoint", "reinit")
CONTROL_KINDS = ("reinit", "random")


class ConfigError(ValueError):
    """A params value that cannot be used; the message is one line meant for the user."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataConfig(Section):
    dataset: Literal["mnist5k", "mnist", "cifar10", "cifar100"] = "mnist5k"
    root: str = "data/raw"
    download: bool = False
    image_size: int = Field(16, ge=4, le=512)
    channels: Literal[1, 3] = 1
    hflip: bool = False


class ModelConfig(Section):
    init_seed: int = Field(0, ge=0)
    dim: int = Field(16, ge=4)
    dim_mults: tuple[int, ...] = (1, 2, 2)
    num_res_blocks: int = Field(1, ge=1)
    attn_resolutions: tuple[int, ...] = (4,)
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    norm_groups: int = Field(8, ge=1)

    @field_validator("dim_mults")
    @classmethod
    def _mults_positive(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if not v or any(m < 1 for m in v):
            raise ValueError("must be a non-empty list of positive integers")
        return v

    @model_validator(mode="after")
    def _groups_divide(self) -> "ModelConfig":
        for m in self.dim_mults:
            if (self.dim * m) % self.norm_groups:
                raise ValueError(
                    f"norm_groups={self.norm_groups} must divide every level's channels "
                    f"(dim x dim_mults = {[self.dim * x for x in self.dim_mults]})"
                )
        return self


class DiffusionConfig(Section):
    timesteps: int = Field(1000, ge=2)
    beta_start: float = Field(1e-4, gt=0.0, lt=1.0)
    beta_end: float = Field(0.02, gt=0.0, lt=1.0)
    loss: Literal["l2", "l1"] = "l2"

    @model_validator(mode="after")
    def _ordered(self) -> "DiffusionConfig":
        if self.beta_end < self.beta_start:
            raise ValueError(f"beta_end={self.beta_end} must be >= beta_start={self.beta_start}")
        return self


class TrainConfig(Section):
    steps: int = Field(1500, ge=1)
    batch_size: int = Field(64, ge=1)
    lr: float = Field(1e-3, gt=0.0)
    warmup_steps: int = Field(100, ge=0)
    grad_clip: float = Field(1.0, gt=0.0)
    ema_decay: float = Field(0.995, ge=0.0, lt=1.0)
    checkpoint_every: int = Field(250, ge=1)
    log_every: int = Field(25, ge=1)
    threads: int = Field(2, ge=1)


class RewindConfig(Section):
    mode: Literal["init", "checkpoint", "reinit"] = "checkpoint"
    step: int = Field(150, ge=0)


class SparsityConfig(Section):
    schedule: Literal["uniform", "global", "lamp", "layerwise", "random"] = "uniform"
    rate: float = Field(0.55, gt=0.0, lt=1.0)
    include: tuple[str, ...] = ("*.weight",)
    exclude: tuple[str, ...] = ()


class Round(Section):
    k: int = Field(ge=1)
    prev: int = Field(ge=0)


class ImpConfig(Section):
    seeds: tuple[int, ...] = (1, 2)
    rounds: tuple[Round, ...] = ()

    @field_validator("seeds")
    @classmethod
    def _distinct(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if not v or len(set(v)) != len(v) or any(s < 0 for s in v):
            raise ValueError("must be a non-empty list of distinct non-negative integers")
        return v

    @field_validator("rounds")
    @classmethod
    def _chained(cls, v: tuple[Round, ...]) -> tuple[Round, ...]:
        for i, r in enumerate(v):
            if r.k != i + 1 or r.prev != i:
                raise ValueError(
                    f"round {i + 1} is {{k: {r.k}, prev: {r.prev}}}; rounds must read "
                    f"{{k: 1, prev: 0}}, {{k: 2, prev: 1}}, ... in order"
                )
        return v


class EvalConfig(Section):
    seeds: tuple[int, ...] = (1,)
    feature_extractor: Literal["classifier", "inception-v3-compat"] = "classifier"
    inception_weights: Optional[str] = None
    num_samples: int = Field(500, ge=2)
    sampling_steps: int = Field(50, ge=1)
    batch_size: int = Field(250, ge=1)
    kid_subset_size: int = Field(100, ge=2)
    heldout_size: int = Field(512, ge=1)
    seed: int = Field(1234, ge=0)

    @model_validator(mode="after")
    def _kid_fits(self) -> "EvalConfig":
        if self.kid_subset_size > self.num_samples:
            raise ValueError(
                f"kid_subset_size={self.kid_subset_size} must be <= num_samples={self.num_samples}"
            )
        return self


class FeaturesConfig(Section):
    steps: int = Field(600, ge=1)
    batch_size: int = Field(128, ge=1)
    lr: float = Field(2e-3, gt=0.0)
    width: int = Field(32, ge=4)
    feature_dim: int = Field(128, ge=2)
    holdout: int = Field(500, ge=0)
    seed: int = Field(0, ge=0)


class SimilarityConfig(Section):
    strength: float = Field(1.0, ge=0.0)
    max_layer_rate: float = Field(0.9, gt=0.0, lt=1.0)
    metric: Literal["kappa", "jaccard"] = "kappa"
    # layer_rates compares one-shot masks at this sparsity: its own number, not the final round's,
    # so adding IMP rounds does not change the layerwise rates (or rerun anything under uniform)
    oneshot_sparsity: float = Field(0.909, gt=0.0, lt=1.0)


class ControlsConfig(Section):
    """Controls trained beside the chain for the listed IMP rounds of every seed."""
    kinds: tuple[Literal["reinit", "random"], ...] = CONTROL_KINDS
    rounds: tuple[int, ...] = ()

    @field_validator("kinds", "rounds")
    @classmethod
    def _distinct(cls, v: tuple) -> tuple:
        if len(set(v)) != len(v):
            raise ValueError("must not repeat an entry")
        return v


class ReportConfig(Section):
    fid_tolerance: float = Field(10.0, ge=0.0)


class Params(Section):
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    diffusion: DiffusionConfig = DiffusionConfig()
    train: TrainConfig = TrainConfig()
    rewind: RewindConfig = RewindConfig()
    sparsity: SparsityConfig = SparsityConfig()
    imp: ImpConfig = ImpConfig()
    eval: EvalConfig = EvalConfig()
    features: FeaturesConfig = FeaturesConfig()
    similarity: SimilarityConfig = SimilarityConfig()
    controls: ControlsConfig = ControlsConfig()
    report: ReportConfig = ReportConfig()

    @model_validator(mode="after")
    def _cross_checks(self) -> "Params":
        factor = 2 ** (len(self.model.dim_mults) - 1)
        if self.data.image_size % factor:
            raise _CrossError(
                "model.dim_mults",
                list(self.model.dim_mults),
                f"{len(self.model.dim_mults)} levels halve the image {len(self.model.dim_mults) - 1} "
                f"times, so data.image_size ({self.data.image_size}) must be divisible by {factor}",
            )
        if self.rewind.mode == "checkpoint" and self.rewind.step >= self.train.steps:
            raise _CrossError(
                "rewind.step", self.rewind.step, f"must be < train.steps ({self.train.steps})"
            )
        missing = [s for s in self.eval.seeds if s not in self.imp.seeds]
        if missing:
            raise _CrossError("eval.seeds", list(self.eval.seeds), f"each must be one of imp.seeds {list(self.imp.seeds)}")
        ks = [r.k for r in self.imp.rounds]
        if any(k not in ks for k in self.controls.rounds):
            raise _CrossError("controls.rounds", list(self.controls.rounds), f"each must be a round k of imp.rounds {ks}")
        if self.sparsity.schedule == "layerwise" and len(self.imp.seeds) < 2:
            raise _CrossError("sparsity.schedule", "layerwise", "needs two imp.seeds to compare tickets")
        return self

    @property
    def target_sparsity(self) -> float:
        """Fraction of prunable weights removed after the last round."""
        return 1.0 - (1.0 - self.sparsity.rate) ** len(self.imp.rounds)

    def retrain_steps(self) -> int:
        """Late rewinding resumes at step k, so the retrain finishes at the dense run's length."""
        return self.train.steps - (self.rewind.step if self.rewind.mode == "checkpoint" else 0)

    def fingerprint(self, *sections: str) -> str:
        """Content hash of the named sections: a checkpoint only resumes under the same recipe."""
        blob = json.dumps({s: getattr(self, s).model_dump(mode="json") for s in sections}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


class _CrossError(ValueError):
    def __init__(self, key: str, value: Any, allowed: str):
        super().__init__(f"{key}={value!r}: {allowed}")
        self.key, self.value, self.allowed = key, value, allowed


def _one_line(err: ValidationError, raw: dict[str, Any]) -> str:
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"])
    ctx_err = (first.get("ctx") or {}).get("error")
    if isinstance(ctx_err, _CrossError):
        return f"params.yaml: {ctx_err.key} = {ctx_err.value!r} is invalid: {ctx_err.allowed}"
    value = first.get("input")
    msg = first["msg"]
    if first["type"] == "extra_forbidden":
        section = first["loc"][0] if len(first["loc"]) > 1 else None
        known = list((Params.model_fields[section].annotation.model_fields if section else Params.model_fields))
        return f"params.yaml: unknown key '{loc}'; allowed keys here: {', '.join(known)}"
    if first["type"] == "literal_error":
        return f"params.yaml: {loc} = {value!r} is not allowed; {msg.replace('Input should be', 'expected')}"
    msg = msg.replace("Value error, ", "")
    if isinstance(value, dict) and loc and first["type"] in ("value_error", "assertion_error"):
        return f"params.yaml: {loc} is invalid: {msg}"
    return f"params.yaml: {loc} = {value!r} is invalid: {msg}"


def parse_params(raw: dict[str, Any] | None) -> Params:
    """Validate a params mapping; raise ConfigError with a one-line message on the first problem."""
    try:
        return Params.model_validate(raw or {})
    except ValidationError as err:
        raise ConfigError(_one_line(err, raw or {})) from None


def load_params(path: str | Path = "params.yaml") -> Params:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: not found (run from the repository root)")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
    if raw is not None and not isinstance(raw, dict):
        raise ConfigError(f"{path}: top level must be a mapping of sections")
    return parse_params(raw)
