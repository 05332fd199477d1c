"""Prediction with flip TTA, averaged in prediction (probability) space, and fold model files."""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ..core.errors import FoldwiseError
from .datasets import to_model_layout
from .loaders import make_eval_loader
from .models import FoldModel, create_model
from .runtime import autocast_dtype

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
def predict_batches(model: torch.nn.Module, loader: DataLoader, task, params, flips: list[str],
            device: torch.device, amp_dtype: torch.dtype | None = None) -> np.ndarray:
    """``task.logits_to_probs`` values (N, len(task.prob_columns)), e.g. probabilities, mean over ``flips``.
    Batches are copied without blocking (from pinned memory on CUDA) and the results stay on the
    device until the end, so the host does not wait for the device once per batch."""
    model.eval()
    out = []
    for batch in loader:
        images = to_model_layout(batch["image"], params.train.channels_last).to(device, non_blocking=True)
        meta = batch["meta"].to(device, non_blocking=True) if "meta" in batch else None
        total = 0.0
        for name in flips:
            with autocast(device, amp_dtype):
                logits = model(flip(images, name), meta)
            total = total + task.logits_to_probs(logits.float(), params)
        out.append(total / len(flips))
    return torch.cat(out).cpu().numpy().astype(np.float64)


def predict_folds(model_dirs: Sequence[Path], dataset: Dataset, task, params, device: torch.device,
                  batch_size: int | None = None) -> np.ndarray:
    """Every fold model in ``model_dirs`` predicts every row of ``dataset`` with the flip TTA of
    ``params.infer.tta``; returns the mean over the models, (N, len(task.prob_columns)) float64.

    One loader serves all models: the device's settings of training (``train.num_workers``, pinned
    memory on CUDA), ``infer.batch_size`` unless ``batch_size``, autocast as ``train.amp`` (as in
    validation, so a fold's OOF score is the score training selected it by)."""
    if not model_dirs:
        raise FoldwiseError("no fold models to predict with; params 'folds' is empty")
    loader = make_eval_loader(dataset, batch_size or params.infer.batch_size, params.train.num_workers, device,
                              threads=params.train.threads)
    amp_dtype = autocast_dtype(params.train.amp, device)
    total = 0.0
    for model_dir in model_dirs:
        model = load_fold_model(model_dir, device, params.train.channels_last)
        total = total + predict_batches(model, loader, task, params, params.infer.tta, device, amp_dtype)
        del model  # free its device memory before the next fold's model is loaded
    return total / len(model_dirs)


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
