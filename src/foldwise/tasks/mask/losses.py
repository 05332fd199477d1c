"""Mask's training loss and multi-head decoding (imports torch: loaded only when a loss is built or
logits are decoded)."""
from __future__ import annotations

import torch

from .task import HEADS, N_CLASSES


class MaskLoss(torch.nn.Module):
    """Cross-entropy against the class in targets (N, 1). ``single``: one 18-way softmax; ``multi``:
    logits (N, 8) = mask 3 | gender 2 | age 3, the sum of the three heads' cross-entropies."""

    class_targets = True  # targets are class indices, which CutMix/MixUp cannot blend (the Trainer refuses them)

    def __init__(self, head: str = "single", smoothing: float = 0.0):
        super().__init__()
        self.head, self.smoothing = head, smoothing

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        classes = targets.reshape(-1).long()  # whole class indices (mixing them is refused by the Trainer)
        logits = logits.float()
        ce = torch.nn.functional.cross_entropy
        if self.head == "single":
            return ce(logits, classes, label_smoothing=self.smoothing)
        parts = torch.split(logits, HEADS, dim=1)
        labels = (classes // 6, (classes // 3) % 2, classes % 3)
        return sum(ce(part, label, label_smoothing=self.smoothing) for part, label in zip(parts, labels))


def multi_head_probs(logits: torch.Tensor) -> torch.Tensor:
    """Logits (N, 8) = mask 3 | gender 2 | age 3 -> 18-class probabilities (N, 18), the product of the
    three softmaxes, in ``class_code`` order (mask * 6 + gender * 3 + age)."""
    mask, gender, age = (torch.softmax(part, dim=1) for part in torch.split(logits, HEADS, dim=1))
    return torch.einsum("nm,ng,na->nmga", mask, gender, age).reshape(len(logits), N_CLASSES)

