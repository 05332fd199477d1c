"""Prediction with flip TTA, averaged in prediction (probability) space, and fold model files."""
from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from ..core.errors import FoldwiseError
from .datasets import to_model_layout
from .models import FoldModel, create_model

MODEL_FILE = "model.pt"


def flip(images: torch.Tensor, name: str) -> torch.Tensor:
    """Flip (N, C, H, W) images: ``hflip`` mirrors width, ``vflip`` height, ``hvflip`` both."""
    dims = {"none": (), "hflip": (3,), "vflip": (2,), "hvflip": (2, 3)}[name]
    return images.flip(dims) if dims else images


def autocast(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


@torch.inference_mode()
def predict(model: torch.nn.Module, loader: DataLoader, task, params, flips: list[str],
            device: torch.device, amp_dtype: torch.dtype | None = None) -> np.ndarray:
    """``task.predict`` values (N, len(task.prob_columns)), e.g. probabilities, mean over ``flips``."""
    model.eval()
    out = []
    for batch in loader:
        images = to_model_layout(batch["image"], params.train.channels_last).to(device)
        meta = batch["meta"].to(device) if "meta" in batch else None
        total = 0.0
        for name in flips:
            with autocast(device, amp_dtype):
                logits = model(flip(images, name), meta)
            total = total + task.predict(logits.float(), params)
        out.append((total / len(flips)).cpu().numpy())
    return np.concatenate(out).astype(np.float64)


def save_fold_model(path: Path, model: FoldModel, config: dict) -> None:
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    torch.save({"config": config, "state_dict": state}, path)


def load_fold_model(model_dir: Path, device: torch.device, channels_last: bool) -> FoldModel:
    path = model_dir / MODEL_FILE
    if not path.is_file():
        raise FoldwiseError(f"{path}: missing; run the train stage for this fold")
    saved = torch.load(path, map_location="cpu", weights_only=False)
    cfg = saved["config"]
    # img_size and input_affine: absent in models saved before they were recorded (CNNs, no remap)
    model = create_model(cfg["model"], cfg["in_chans"], cfg["num_outputs"], cfg["n_meta"],
                         img_size=cfg.get("img_size"), input_affine=cfg.get("input_affine"))
    model.load_state_dict(saved["state_dict"])
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    return model
