"""HMS's training loss (imports torch: loaded only when a loss is built)."""
from __future__ import annotations

import torch


class VoteKLLoss(torch.nn.Module):
    """KL(votes || softmax(logits)), batch mean, on the normalised vote fractions.

    ``smoothing`` (train.label_smoothing) blends the targets toward the uniform distribution.
    """

    def __init__(self, smoothing: float = 0.0):
        super().__init__()
        self.smoothing = smoothing
        self.kl = torch.nn.KLDivLoss(reduction="batchmean")

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        targets = targets.float()
        targets = targets / targets.sum(dim=1, keepdim=True).clamp_min(1e-12)
        if self.smoothing:
            targets = targets * (1.0 - self.smoothing) + self.smoothing / targets.shape[1]
        return self.kl(torch.log_softmax(logits.float(), dim=1), targets)

