"""Losses more than one task trains with. Imports torch: a task loads this module only when it builds its loss."""
from __future__ import annotations

import torch


class SmoothedBCEWithLogits(torch.nn.Module):
    """BCE with logits (N, K) against 0/1 targets (N, K), the targets smoothed toward 0.5 by ``smoothing``
    (train.label_smoothing) and positives weighted by ``pos_weight`` (train.pos_weight); a scalar mean."""

    def __init__(self, pos_weight: float = 1.0, smoothing: float = 0.0):
        super().__init__()
        self.smoothing = smoothing
        # a buffer, moved to the device once with the module (a tensor made per step is a host copy each)
        self.register_buffer("pos_weight", torch.tensor([pos_weight]), persistent=False)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        targets = targets.float() * (1.0 - self.smoothing) + 0.5 * self.smoothing
        return torch.nn.functional.binary_cross_entropy_with_logits(logits.float(), targets, pos_weight=self.pos_weight)
