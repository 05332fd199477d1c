"""The image task's training loss (imports torch: loaded only when a loss is built)."""
from __future__ import annotations

import torch

from ..common.losses import SmoothedBCEWithLogits


class ImagesLoss(torch.nn.Module):
    """Cross-entropy on the class index (N, 1) or on class probabilities (N, C), the one-hot rows
    CutMix/MixUp blend (multiclass), BCE with logits (binary, multilabel; targets smoothed toward
    0.5), or MSE (regression), for logits (N, num_logits) and targets (N, T)."""

    def __init__(self, kind: str, smoothing: float = 0.0, pos_weight: float = 1.0):
        super().__init__()
        self.kind, self.smoothing = kind, smoothing
        self.bce = SmoothedBCEWithLogits(pos_weight, smoothing)
        self.class_targets = kind == "multiclass"  # the Trainer mixes them as one-hot rows (engine/mixing.py)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        logits, targets = logits.float(), targets.float()
        if self.kind == "multiclass":
            classes = targets[:, 0].long() if targets.shape[1] == 1 else targets  # indices or (N, C) probabilities
            return torch.nn.functional.cross_entropy(logits, classes, label_smoothing=self.smoothing)
        if self.kind in ("binary", "multilabel"):
            return self.bce(logits, targets)
        return torch.nn.functional.mse_loss(logits, targets)

