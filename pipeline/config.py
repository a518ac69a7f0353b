"""Typed, validated view of params.yaml.

Every stage reads its numbers through `load_params`, so a bad value stops the run before any
compute with one line naming the key, the value and what is allowed (`ConfigError`).
"""
from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, Optional

import torch
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

DATASETS = ("mnist5k", "mnist", "cifar10", "cifar100")
SCHEDULES = ("uniform", "global", "lamp", "layerwise", "random")
REWIND_MODES = ("init", "checkpoint", "reinit")
TRAIN_IMAGES = {"mnist5k": 5000, "mnist": 60000, "cifar10": 50000, "cifar100": 50000}
CONTROL_KINDS = ("reinit", "random")


class ConfigError(ValueError):
    """A params value that cannot be used; the message is one line meant for the user."""


class Section(BaseModel):
    # a NaN or infinite number passes every `ge`/`gt` bound and only shows up as NaN hours later
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class DataConfig(Section):
    dataset: Literal["mnist5k", "mnist", "cifar10", "cifar100"] = "mnist5k"
    root: str = "data/raw"
    download: bool = False
    image_size: int = Field(16, ge=4, le=512)
    channels: Literal[1, 3] = 1
    hflip: bool = False
    heldout: int = Field(500, ge=1)   # mnist5k: digits set aside for the held-out loss (others: test split)
    heldout_seed: int = Field(0, ge=0)


class ModelConfig(Section):
    init_seed: int = Field(0, ge=0)
    dim: int = Field(16, ge=4, le=1024)
    dim_mults: tuple[int, ...] = (1, 2, 2)
    num_res_blocks: int = Field(1, ge=1, le=16)
    attn_resolutions: tuple[int, ...] = (4,)
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    norm_groups: int = Field(8, ge=1)

    @field_validator("dim_mults")
    @classmethod
    def _mults_positive(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if not v or len(v) > 8 or any(m < 1 or m > 64 for m in v):
            raise ValueError("must be a list of 1 to 8 integers in [1, 64]")
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
    feature_extractor: Literal["classifier", "inception-v3-compat", "inception-fid"] = "classifier"
    inception_weights: Optional[str] = None
    num_samples: int = Field(500, ge=2)
    sampling_steps: int = Field(50, ge=1)
    batch_size: int = Field(250, ge=1)
    kid_subset_size: int = Field(100, ge=2)
    heldout_size: int = Field(512, ge=1)
    heldout_buckets: int = Field(10, ge=1)        # timestep buckets of heldout_loss_by_t
    seed: int = Field(1234, ge=0)
    fid_bootstrap: int = Field(500, ge=20)        # bootstrap resamples of the generated samples
    fid_ci_level: float = Field(0.95, gt=0.0, lt=1.0)
    fid_inf_sizes: int = Field(5, ge=2)           # subset sizes of the FID_inf fit (Chong & Forsyth 2020)
    fid_inf_min_fraction: float = Field(0.5, gt=0.0, lt=1.0)  # smallest subset, as a fraction of num_samples
    fid_inf_subsets: int = Field(3, ge=1)         # random subsets per size (their FIDs averaged)
    fid_inf_bootstrap: int = Field(40, ge=10)     # bootstrap resamples behind fid_inf_ci (each refits)

    @field_validator("seeds")
    @classmethod
    def _eval_seeds_distinct(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if v is not None and (not v or len(set(v)) != len(v)):
            raise ValueError("must be a non-empty list of distinct IMP seeds")
        return v

    @model_validator(mode="after")
    def _kid_fits(self) -> "EvalConfig":
        if self.kid_subset_size > self.num_samples:
            raise ValueError(
                f"kid_subset_size={self.kid_subset_size} must be <= num_samples={self.num_samples}"
            )
        if self.fid_inf_bootstrap > self.fid_bootstrap:
            raise ValueError(f"fid_inf_bootstrap={self.fid_inf_bootstrap} must be <= fid_bootstrap={self.fid_bootstrap}")
        smallest = round(self.fid_inf_min_fraction * self.num_samples)
        if not 2 <= smallest < self.num_samples:
            raise ValueError(f"fid_inf_min_fraction={self.fid_inf_min_fraction} must leave subsets of at least 2 "
                             f"and fewer than num_samples={self.num_samples} (the FID_inf fit needs two sizes)")
        return self


class FeaturesConfig(Section):
    source: Literal["pinned", "train"] = "pinned"  # pinned: the committed classifier when it matches
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
    resamples: int = Field(2000, ge=100)  # bootstrap resamples and permutations per similarity claim
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
        levels = self.level_resolutions()
        stray = [r for r in self.model.attn_resolutions if r not in levels]
        if stray:
            raise _CrossError("model.attn_resolutions", list(self.model.attn_resolutions),
                              f"{stray} match no U-Net level; the levels of {self.data.image_size}x"
                              f"{self.data.image_size} images are {levels} (an empty list means attention in "
                              f"the middle block only)")
        if self.eval.sampling_steps > self.diffusion.timesteps:
            raise _CrossError("eval.sampling_steps", self.eval.sampling_steps,
                              f"DDIM steps must be <= diffusion.timesteps ({self.diffusion.timesteps})")
        if self.rewind.mode == "checkpoint" and self.rewind.step >= self.train.steps:
            raise _CrossError(
                "rewind.step", self.rewind.step, f"must be < train.steps ({self.train.steps})"
            )
        missing = [s for s in self.eval.seeds if s not in self.imp.seeds]
        if missing:
            raise _CrossError("eval.seeds", list(self.eval.seeds), f"each must be one of imp.seeds {list(self.imp.seeds)}")
        if len(self.imp.seeds) < 2:
            raise _CrossError("imp.seeds", list(self.imp.seeds),
                              "needs two seeds: the layer_rates and similarity stages compare two tickets")
        train_images = TRAIN_IMAGES[self.data.dataset] - (self.data.heldout if self.data.dataset == "mnist5k" else 0)
        if self.features.holdout >= train_images:
            raise _CrossError("features.holdout", self.features.holdout,
                              f"must be < the {train_images} training images of {self.data.dataset}")
        ks = [r.k for r in self.imp.rounds]
        if any(k not in ks for k in self.controls.rounds):
            raise _CrossError("controls.rounds", list(self.controls.rounds), f"each must be a round k of imp.rounds {ks}")
        self._check_prunable()
        return self

    def level_resolutions(self) -> list[int]:
        """Feature-map size at each U-Net level (attention is placed by these numbers)."""
        return [self.data.image_size // 2 ** i for i in range(len(self.model.dim_mults))]

    def _check_prunable(self) -> None:
        """Rules that need the layer shapes; read off a parameter-free (meta-device) model."""
        from .masks import prunable_names
        from .pruning import layerwise_counts, uniform_counts

        net = _meta_unet(self.model, self.data.channels, self.data.image_size)
        inc, exc = self.sparsity.include, self.sparsity.exclude
        shapes = dict(net.named_parameters())
        kept = {n: shapes[n].numel() for n in prunable_names(net, inc, exc)}
        if not kept:
            raise _CrossError("sparsity.include", list(inc),
                              f"with sparsity.exclude {list(exc)} no conv/linear weight is prunable "
                              f"(names look like {prunable_names(net)[-1]!r})")
        # the layer_rates stage previews one layerwise round of the dense net whatever the schedule;
        # the layerwise rounds themselves get the same test on each round's uniform-sized survivors

        rounds = len(self.imp.rounds) if self.sparsity.schedule == "layerwise" else 1
        cap = self.similarity.max_layer_rate
        for r in range(1, rounds + 1):
            removed = uniform_counts(kept, self.sparsity.rate)
            try:
                layerwise_counts(kept, {n: 1.0 for n in kept}, sum(removed.values()), cap)
            except ValueError:
                raise _CrossError("similarity.max_layer_rate", cap,
                                  f"too low for round {r} to remove sparsity.rate = {self.sparsity.rate} of the "
                                  f"surviving weights (each layer may lose at most {cap} of its own)") from None
            kept = {n: kept[n] - removed[n] for n in kept}

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


@lru_cache(maxsize=8)
def _meta_unet(model: ModelConfig, channels: int, image_size: int):
    """The configured U-Net on the 'meta' device: every shape, no memory, built in milliseconds."""
    from .unet import build_unet

    with torch.device("meta"):
        return build_unet(model, channels, image_size)


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


def _printable(text: str) -> str:
    """Keys and values are the user's: escape line breaks and control characters to keep one line."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


def parse_params(raw: dict[str, Any] | None) -> Params:
    """Validate a params mapping; raise ConfigError with a one-line message on the first problem."""
    try:
        return Params.model_validate(raw or {})
    except ValidationError as err:
        raise ConfigError(_printable(_one_line(err, raw or {}))) from None


def load_params(path: str | Path = "params.yaml") -> Params:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: not found (run from the repository root)")
    try:
        raw = yaml.safe_load(path.read_text())
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
    if raw is not None and not isinstance(raw, dict):
        raise ConfigError(f"{path}: top level must be a mapping of sections")
    params = parse_params(raw)
    # files the study reads only at its end (reference, eval) must be there before it starts
    weights = params.eval.inception_weights
    if params.eval.feature_extractor == "inception-v3-compat" and weights and not Path(weights).is_file():
        raise ConfigError(_printable(f"{path}: eval.inception_weights = {weights!r} is invalid: no such file "
                                     f"(relative paths are read from {Path.cwd()})"))
    if params.eval.feature_extractor == "inception-fid":  # installed and the pinned file (hashed once per process)
        from .inception_fid import verify_weights
        verify_weights()
    return params
