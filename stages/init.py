"""DVC stage 'init': build the U-Net and save its initial weights theta0 (seeded).

Usage: python -m stages.init
"""
from __future__ import annotations

import torch
from tqdm.auto import tqdm

from pipeline.app.stage import run_stage
from pipeline.core import paths
from pipeline.core.config import Params
from pipeline.core.io import save_json, save_torch
from pipeline.sparsity import tickets


def run_init(params: Params) -> None:
    torch.manual_seed(params.model.init_seed)
    model = tickets.new_model(params)
    save_torch(model.state_dict(), paths.init_dir() / "theta0.pt")
    n = sum(p.numel() for p in model.parameters())
    save_json({"parameters": n, "init_seed": params.model.init_seed}, paths.init_dir() / "model.json")
    tqdm.write(f"init: U-Net with {n:,} parameters -> {paths.init_dir() / 'theta0.pt'}")


if __name__ == "__main__":
    run_stage(run_init)
