"""CutMix and MixUp on a batch, with targets mixed by the pasted area or lambda.

timm's ``Mixup`` assumes integer class targets and draws its boxes from NumPy's global RNG, so
both are done here: boxes follow timm's ``rand_bbox`` recipe but come from the generator passed
in, and targets are mixed to serve soft votes (HMS), regression scores (PetFinder) and the ``max``
rule for SETI (a needle pasted in stays a needle). Class indices (mask, images multiclass) are
mixed as one-hot rows (``one_hot``), which the task's loss reads as soft-target cross-entropy.
"""
from __future__ import annotations

import numpy as np
import torch


def one_hot(targets: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Class indices (N, 1), stored as floats -> one-hot rows (N, num_classes) float32 on the same
    device. A scatter, not ``F.one_hot``, whose CPU path reads the indices back to check them."""
    index = targets.reshape(-1, 1).long()
    return torch.zeros(len(index), num_classes, device=targets.device).scatter_(1, index, 1.0)


def mix_targets(targets: torch.Tensor, perm: torch.Tensor, lam: float, mode: str) -> torch.Tensor:
    if mode == "max":
        return torch.maximum(targets, targets[perm])
    return lam * targets + (1.0 - lam) * targets[perm]


def batch_permutation(rng: np.random.Generator, images: torch.Tensor) -> torch.Tensor:
    """A shuffled order of the batch, drawn from ``rng`` and copied once to the batch's device
    (indexing a CUDA tensor with a CPU index would copy it again for every tensor indexed)."""
    return torch.from_numpy(rng.permutation(images.shape[0])).to(images.device, non_blocking=True)


def cutmix_box(height: int, width: int, lam: float, rng: np.random.Generator) -> tuple[int, int, int, int]:
    """A box of about (1 - lam) of the image area, centred uniformly, clipped at the borders
    (timm's ``rand_bbox``); returns (y0, y1, x0, x1)."""
    ratio = np.sqrt(1.0 - lam)
    cut_h, cut_w = int(height * ratio), int(width * ratio)
    cy, cx = int(rng.integers(0, height)), int(rng.integers(0, width))
    y0, y1 = np.clip([cy - cut_h // 2, cy + (cut_h + 1) // 2], 0, height)
    x0, x1 = np.clip([cx - cut_w // 2, cx + (cut_w + 1) // 2], 0, width)
    return int(y0), int(y1), int(x0), int(x1)


def cutmix(images: torch.Tensor, targets: torch.Tensor, alpha: float, mode: str,
           rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Paste a box of a shuffled batch into (N, C, H, W) images; lam = 1 - box area / image area."""
    height, width = images.shape[-2:]
    y0, y1, x0, x1 = cutmix_box(height, width, float(rng.beta(alpha, alpha)), rng)
    lam = 1.0 - (y1 - y0) * (x1 - x0) / (height * width)  # the area actually pasted
    perm = batch_permutation(rng, images)
    mixed = images.clone()
    mixed[:, :, y0:y1, x0:x1] = images[perm][:, :, y0:y1, x0:x1]
    return mixed, mix_targets(targets, perm, lam, mode), lam


def mixup(images: torch.Tensor, targets: torch.Tensor, alpha: float, mode: str,
          rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Blend images with a shuffled batch: lam * x + (1 - lam) * x[perm]."""
    lam = float(rng.beta(alpha, alpha))
    perm = batch_permutation(rng, images)
    return lam * images + (1.0 - lam) * images[perm], mix_targets(targets, perm, lam, mode), lam


def mix_batch(images, targets, augment, rng: np.random.Generator, num_classes: int | None = None):
    """With probability cutmix_p apply CutMix, else with probability mixup_p MixUp, else nothing.
    ``num_classes``: targets are class indices (N, 1); every batch's targets become one-hot rows
    (N, num_classes) first, mixed or not, so the loss sees one kind of target."""
    if num_classes is not None:
        targets = one_hot(targets, num_classes)
    draw = rng.random()
    if draw < augment.cutmix_p:
        images, targets, _ = cutmix(images, targets, augment.cutmix_alpha, augment.mix_label, rng)
    elif draw < augment.cutmix_p + (1.0 - augment.cutmix_p) * augment.mixup_p:
        images, targets, _ = mixup(images, targets, augment.mixup_alpha, augment.mix_label, rng)
    return images, targets
