"""Mask's training loss and multi-head decoding (imports torch: loaded only when a loss is built or
logits are decoded)."""
from __future__ import annotations

import torch

from .task import HEADS, N_CLASSES


class MaskLoss(torch.nn.Module):
    """Cross-entropy against targets (N, 1) of class indices, or (N, 18) of class probabilities (the
    one-hot rows CutMix/MixUp blend). ``single``: one 18-way softmax; ``multi``: logits (N, 8) =
    mask 3 | gender 2 | age 3, the sum of the three heads' cross-entropies, each head's soft target
    the marginal of the 18-class one (a blend of its one-hot rows)."""

    class_targets = True  # the Trainer mixes them as one-hot rows (engine/mixing.py)

    def __init__(self, head: str = "single", smoothing: float = 0.0):
        super().__init__()
        self.head, self.smoothing = head, smoothing

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        logits = logits.float()
        ce = torch.nn.functional.cross_entropy
        if targets.shape[1] == 1:
            classes = targets.reshape(-1).long()
            labels = (classes,) if self.head == "single" else (classes // 6, (classes // 3) % 2, classes % 3)
        else:
            probs = targets.float()
            cube = probs.reshape(-1, *HEADS)  # (N, mask, gender, age) in class_code order
            labels = (probs,) if self.head == "single" else (cube.sum((2, 3)), cube.sum((1, 3)), cube.sum((1, 2)))
        parts = (logits,) if self.head == "single" else torch.split(logits, HEADS, dim=1)
        return sum(ce(part, label, label_smoothing=self.smoothing) for part, label in zip(parts, labels))


def multi_head_probs(logits: torch.Tensor) -> torch.Tensor:
    """Logits (N, 8) = mask 3 | gender 2 | age 3 -> 18-class probabilities (N, 18), the product of the
    three softmaxes, in ``class_code`` order (mask * 6 + gender * 3 + age)."""
    mask, gender, age = (torch.softmax(part, dim=1) for part in torch.split(logits, HEADS, dim=1))
    return torch.einsum("nm,ng,na->nmga", mask, gender, age).reshape(len(logits), N_CLASSES)

