import copy
import os

import pytest
import torch

from pipeline.app.params import parse_params

os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("LTH_THREADS", "1")  # stages and tiny DVC projects: one thread, byte-comparable runs
torch.set_num_threads(1)

TINY = {
    "data": {"dataset": "mnist5k", "image_size": 8, "channels": 1},
    "model": {"dim": 8, "dim_mults": [1, 2], "attn_resolutions": [4], "norm_groups": 4, "num_res_blocks": 1},
    "diffusion": {"timesteps": 100},
    "train": {"steps": 6, "batch_size": 8, "warmup_steps": 2, "checkpoint_every": 2, "log_every": 2},
    "rewind": {"mode": "checkpoint", "step": 2},
    "sparsity": {"schedule": "uniform", "rate": 0.5, "exclude": ["init_conv.*", "final_conv.*"]},
    "imp": {"seeds": [1, 2], "rounds": [{"k": 1, "prev": 0}, {"k": 2, "prev": 1}]},
    "controls": {"rounds": []},
    "budget": {"seeds": []},  # off: tiny studies are the chain; the budget tests switch it on
    "eval": {"num_samples": 16, "sampling_steps": 2, "batch_size": 8, "kid_subset_size": 8,
             "heldout_size": 16},
    "features": {"steps": 5, "batch_size": 16, "width": 8, "feature_dim": 16, "holdout": 50},
}


def merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


@pytest.fixture
def tiny_raw():
    return copy.deepcopy(TINY)


@pytest.fixture
def tiny():
    """Factory: tiny(**{"section": {...}}) -> Params with overrides merged into TINY."""
    def make(**over):
        return parse_params(merge(TINY, over))
    return make
