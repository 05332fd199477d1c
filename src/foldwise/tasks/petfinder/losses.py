"""PetFinder's training loss (imports torch: loaded only when a loss is built)."""
from __future__ import annotations

import torch

from ...core.errors import FoldwiseError


class PawpularityLoss(torch.nn.Module):
    """``bce``: BCE with logits against Pawpularity/100; ``mse``: MSE of the raw output against it."""

    def __init__(self, kind: str = "bce"):
        super().__init__()
        if kind not in ("bce", "mse"):
            raise FoldwiseError(f"petfinder.loss must be bce or mse, got {kind!r}")
        self.kind = kind

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        logits, targets = logits.float(), targets.float() / 100.0
        if self.kind == "bce":
            return torch.nn.functional.binary_cross_entropy_with_logits(logits, targets)
        return torch.nn.functional.mse_loss(logits, targets)

