"""Typed, validated view of params.yaml.

Every stage reads its numbers through `load_params`, so a bad value stops the run before any
compute with one line naming the key, the value and what is allowed (`ConfigError`).

params.yaml is the one source of defaults: the defaults below repeat it so that presets and tests
may leave keys out, and `tests/core/test_config.py` fails when the two disagree.
Rules that need the U-Net's layer shapes live above this layer (`pipeline.sparsity.rules`) and
run through `pipeline.app.params`, which stages and the CLI use.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pipeline.core.errors import ConfigError

SCHEDULES = ("uniform", "global", "lamp", "layerwise", "random")
TRAIN_IMAGES = {"mnist5k": 5000, "mnist": 60000, "cifar10": 50000, "cifar100": 50000}


class Section(BaseModel):
    # a NaN or infinite number passes every `ge`/`gt` bound and only shows up as NaN hours later
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class DataConfig(Section):
    dataset: Literal["mnist5k", "mnist", "cifar10", "cifar100", "imagefolder"] = "mnist5k"
    root: str = "data/raw"
    download: bool = False
    image_size: int = Field(12, ge=4, le=512)
    channels: Literal[1, 3] = 1
    hflip: bool = False
    heldout: int = Field(500, ge=1)   # mnist5k: digits set aside for the held-out loss (others: test split)
    heldout_seed: int = Field(0, ge=0)
    label: str = Field("", max_length=120)  # how the report names the data next to every FID ("": from dataset)


class ModelConfig(Section):
    init_seed: int = Field(0, ge=0)
    # shared: every replicate seed starts from the one theta0 (the similarity claims compare tickets of
    # one initialisation); per_seed: each seed draws its own theta0, so the intervals over seeds include
    # initialisation variance
    theta0: Literal["shared", "per_seed"] = "shared"
    dim: int = Field(16, ge=4, le=1024)
    dim_mults: tuple[int, ...] = (1, 2, 2)
    num_res_blocks: int = Field(1, ge=1, le=16)
    attn_resolutions: tuple[int, ...] = (3,)
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
    steps: int = Field(1200, ge=1)
    batch_size: int = Field(32, ge=1)
    lr: float = Field(1e-3, gt=0.0)
    warmup_steps: int = Field(100, ge=0)
    lr_schedule: Literal["constant", "cosine", "linear"] = "cosine"  # after warm-up
    lr_floor: float = Field(0.1, ge=0.0, le=1.0)   # decay ends at this fraction of train.lr
    # fractions of train.steps at which the dense run keeps its EMA weights: the eval_dense stage
    # scores the held-out loss there to check that the dense baseline has converged
    convergence_checks: tuple[float, ...] = (0.5, 0.75)
    grad_clip: float = Field(1.0, gt=0.0)
    ema_decay: float = Field(0.995, ge=0.0, lt=1.0)
    checkpoint_every: int = Field(250, ge=1)
    log_every: int = Field(25, ge=1)


    @field_validator("convergence_checks")
    @classmethod
    def _fractions(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        if any(not 0.0 < f < 1.0 for f in v) or list(v) != sorted(set(v)):
            raise ValueError("must be increasing fractions of train.steps in (0, 1)")
        return v

    def check_steps(self) -> tuple[int, ...]:
        """The dense run's steps whose EMA weights the convergence check scores (the end included)."""
        return tuple(sorted({max(1, round(f * self.steps)) for f in self.convergence_checks} | {self.steps}))


class RewindConfig(Section):
    mode: Literal["init", "checkpoint", "reinit"] = "checkpoint"
    step: int = Field(120, ge=0)


class SparsityConfig(Section):
    schedule: Literal["uniform", "global", "lamp", "layerwise", "random"] = "uniform"
    rate: float = Field(0.684, gt=0.0, lt=1.0)   # 2 rounds: 1 − 0.316² = 90.0 % (the primary claim)
    include: tuple[str, ...] = ("*.weight",)
    exclude: tuple[str, ...] = ("init_conv.*", "final_conv.*")


class Round(Section):
    k: int = Field(ge=1)
    prev: int = Field(ge=0)


class ImpConfig(Section):
    seeds: tuple[int, ...] = (1, 2, 3)
    rounds: tuple[Round, ...] = tuple(Round(k=k, prev=k - 1) for k in range(1, 3))

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
    feature_extractor: Literal["classifier", "inception-v3-compat", "inception-fid"] = "classifier"
    inception_weights: Optional[str] = None
    num_samples: int = Field(500, ge=2)
    sampling_steps: int = Field(50, ge=1)
    batch_size: int = Field(250, ge=1)
    kid_subset_size: int = Field(100, ge=2)
    heldout_size: int = Field(2048, ge=1)         # (image, t, noise) triples; may exceed the held-out images
    heldout_buckets: int = Field(10, ge=1)        # timestep buckets of heldout_loss_by_t
    seed: int = Field(1234, ge=0)
    fid_bootstrap: int = Field(500, ge=20)        # bootstrap resamples of the generated samples
    fid_ci_level: float = Field(0.95, gt=0.0, lt=1.0)
    fid_inf_sizes: int = Field(5, ge=2)           # subset sizes of the FID_inf fit (Chong & Forsyth 2020)
    fid_inf_min_fraction: float = Field(0.5, gt=0.0, lt=1.0)  # smallest subset, as a fraction of num_samples
    fid_inf_subsets: int = Field(30, ge=1)         # random subsets per size (their FIDs averaged)
    fid_inf_bootstrap: int = Field(40, ge=10)     # bootstrap resamples behind fid_inf_ci (each refits)
    fid_splits: int = Field(100, ge=10)           # half-splits behind the interval of FID at N samples

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
    # equal-count |theta| rank bins per layer behind the magnitude null (independence given the bin)
    magnitude_bins: int = Field(20, ge=2, le=1000)


class ControlsConfig(Section):
    """Controls trained beside the chain for the listed IMP rounds of every seed."""
    kinds: tuple[Literal["reinit", "random"], ...] = ("reinit", "random")
    rounds: tuple[int, ...] = (2,)

    @field_validator("kinds", "rounds")
    @classmethod
    def _distinct(cls, v: tuple) -> tuple:
        if len(set(v)) != len(v):
            raise ValueError("must not repeat an entry")
        return v


class ReportConfig(Section):
    # non-inferiority margin of a ticket's FID, as a fraction of its seed's dense FID (set in advance)
    margin: float = Field(0.1, gt=0.0, lt=1.0)
    margins: tuple[float, ...] = (0.05, 0.1, 0.2)   # the verdict across these margins, in a table
    level: float = Field(0.95, gt=0.5, lt=1.0)      # level of every interval over seeds
    # descriptive only: the dense baseline's held-out loss improvement over the last convergence check
    # is compared with this fraction in the report's text (no verdict hangs on it: a budget check does)
    converged_tolerance: float = Field(0.01, gt=0.0, lt=1.0)
    # THE primary claim, "ticket non-inferior to dense", is read at the round whose mean prunable sparsity
    # lies within primary_sparsity ± primary_tolerance (none there: "not measured"); all else is secondary
    primary_sparsity: float = Field(0.90, gt=0.0, lt=1.0)
    primary_tolerance: float = Field(0.005, gt=0.0, lt=0.5)

    @field_validator("margins")
    @classmethod
    def _margins(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        if not v or any(not 0.0 < m < 1.0 for m in v) or list(v) != sorted(set(v)):
            raise ValueError("must be increasing fractions of the dense FID in (0, 1)")
        return v

    @model_validator(mode="after")
    def _primary_window(self) -> "ReportConfig":
        low, high = self.primary_sparsity - self.primary_tolerance, self.primary_sparsity + self.primary_tolerance
        if not (0.0 < low and high < 1.0):
            raise ValueError(f"primary_sparsity ± primary_tolerance = [{low:g}, {high:g}] must lie inside (0, 1)")
        return self


class BudgetConfig(Section):
    """The budget check of the primary claim: for each of `seeds`, the dense run and round `round`'s
    ticket (its mask from the chain, rewound like the chain) trained again at factor x train.steps, so
    the report can say whether the ticket-vs-dense verdict at train.steps survives the longer budget.
    `round` is explicit because dvc.yaml templates cannot compute it: set it to the primary round (the
    report's primary sparsity; the report says so when they differ). seeds: [] switches the check off."""
    factor: int = Field(2, ge=2)
    round: int = Field(2, ge=1)
    seeds: tuple[int, ...] = (1, 2, 3)

    @field_validator("seeds")
    @classmethod
    def _distinct(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if len(set(v)) != len(v) or any(s < 0 for s in v):
            raise ValueError("must be a list of distinct non-negative integers ([] switches the budget check off)")
        return v

    @property
    def enabled(self) -> bool:
        return bool(self.seeds)


class ClusterConfig(Section):
    """What `lth-diffusion repro --executor slurm` asks SLURM for, per stage. No stage declares these
    keys, so they enter no stage hash: moving a study to a cluster keeps its cache."""
    partition: Optional[str] = None
    account: Optional[str] = None
    time_min: int = Field(240, ge=1)          # wall-time limit of one stage's job
    cpus_per_stage: int = Field(8, ge=1)      # also the stage's LTH_THREADS
    gpus_per_stage: int = Field(1, ge=0)      # for the stages in gpu_stages (more than 1: data-parallel ranks)
    mem_gb: int = Field(32, ge=1)
    gpu_stages: tuple[str, ...] = ("dense", "retrain", "control", "reference", "eval_dense", "eval", "eval_control")
    max_jobs: int = Field(32, ge=1)           # stages queued or running at once


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
    budget: BudgetConfig = BudgetConfig()
    cluster: ClusterConfig = ClusterConfig()

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
        if self.model.theta0 == "per_seed" and self.sparsity.schedule == "layerwise":
            raise _CrossError("model.theta0", self.model.theta0,
                              "the layerwise rates come from the agreement of tickets of one theta0; "
                              "use model.theta0=shared with sparsity.schedule=layerwise")
        if len(self.imp.seeds) < 2:
            raise _CrossError("imp.seeds", list(self.imp.seeds),
                              "needs two seeds: the layer_rates and similarity stages compare two tickets")
        # an image folder's size is known once it is read (the prepare and features stages check it there)
        train_images = TRAIN_IMAGES.get(self.data.dataset, 0) - (self.data.heldout if self.data.dataset == "mnist5k" else 0)
        if train_images and self.features.holdout >= train_images:
            raise _CrossError("features.holdout", self.features.holdout,
                              f"must be < the {train_images} training images of {self.data.dataset}")
        ks = [r.k for r in self.imp.rounds]
        if any(k not in ks for k in self.controls.rounds):
            raise _CrossError("controls.rounds", list(self.controls.rounds), f"each must be a round k of imp.rounds {ks}")
        if self.budget.enabled:
            stray = [s for s in self.budget.seeds if s not in self.imp.seeds]
            if stray or len(self.budget.seeds) < 2:
                raise _CrossError("budget.seeds", list(self.budget.seeds),
                                  f"must be [] (no budget check) or at least two seeds of imp.seeds "
                                  f"{list(self.imp.seeds)} (an interval over seeds needs two)")
            if self.budget.round not in ks:
                raise _CrossError("budget.round", self.budget.round,
                                  f"must be a round k of imp.rounds {ks} (the primary round), or set budget.seeds: []")
        return self

    def level_resolutions(self) -> list[int]:
        """Feature-map size at each U-Net level (attention is placed by these numbers)."""
        return [self.data.image_size // 2 ** i for i in range(len(self.model.dim_mults))]

    @property
    def target_sparsity(self) -> float:
        """Fraction of prunable weights removed after the last round."""
        return 1.0 - (1.0 - self.sparsity.rate) ** len(self.imp.rounds)

    def population(self) -> str:
        """What the replicate seeds vary, i.e. the population an interval over seeds describes."""
        if self.model.theta0 == "per_seed":
            return ("replicate seeds that vary the data order and the initialisation (each seed its own θ0, "
                    "model.theta0 = per_seed), sampling noise and held-out items shared by every run (common "
                    "random numbers)")
        return ("data-order seeds of one θ0 (initialisation not varied: model.theta0 = shared), sampling noise and "
                "held-out items shared by every run (common random numbers)")

    def start_step(self, mode: str | None = None) -> int:
        """The step a masked retrain starts at: late rewinding (`checkpoint`) continues the dense
        run from step k, every other start (theta0, a fresh draw) begins at 0. `mode` defaults to
        rewind.mode (a control passes its own)."""
        return self.rewind.step if (mode or self.rewind.mode) == "checkpoint" else 0

    def at_budget(self) -> "Params":
        """These params with train.steps stretched to budget.factor x train.steps: the budget stages'
        recipe. The lr decay stretches with it; warm-up, rewind.step and the data-order seed stay."""
        steps = self.budget.factor * self.train.steps
        return self.model_copy(update={"train": self.train.model_copy(update={"steps": steps})})

    def retrain_steps(self) -> int:
        """Late rewinding resumes at step k, so the retrain finishes at the dense run's length."""
        return self.train.steps - self.start_step()

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(channels, height, width) of one image."""
        return self.data.channels, self.data.image_size, self.data.image_size

    def fingerprint(self, *sections: str) -> str:
        """Content hash of the named sections: a checkpoint only resumes under the same recipe."""
        blob = json.dumps({s: getattr(self, s).model_dump(mode="json") for s in sections}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


# keys that left params.yaml, and where their job went
MOVED = {"train.threads": "CPU threads are a runtime choice that enters no stage hash; set LTH_THREADS "
                          "(`lth-diffusion repro -j N` splits the cores between its workers)"}


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
    if first["type"] == "extra_forbidden" and loc in MOVED:
        return f"params.yaml: '{loc}' is no longer a param: {MOVED[loc]}"
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


def printable(text: str) -> str:
    """Keys and values are the user's: escape line breaks and control characters to keep one line."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


def parse_params(raw: dict[str, Any] | None) -> Params:
    """Validate a params mapping; raise ConfigError with a one-line message on the first problem."""
    try:
        return Params.model_validate(raw or {})
    except ValidationError as err:
        raise ConfigError(printable(_one_line(err, raw or {}))) from None


def load_params(path: str | Path = "params.yaml") -> Params:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: not found (run from the repository root)")
    try:
        raw = yaml.safe_load(path.read_text())
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"{path}: not valid YAML{where}: {problem}") from None
    if raw is not None and not isinstance(raw, dict):
        raise ConfigError(f"{path}: top level must be a mapping of sections")
    params = parse_params(raw)
    # files the study reads only at its end (reference, eval) must be there before it starts
    weights = params.eval.inception_weights
    if params.eval.feature_extractor == "inception-v3-compat" and weights and not Path(weights).is_file():
        raise ConfigError(printable(f"{path}: eval.inception_weights = {weights!r} is invalid: no such file "
                                     f"(relative paths are read from {Path.cwd()})"))
    return params
