"""CutMix and MixUp on a batch, with targets mixed by the pasted area or lambda.

Boxes and area-corrected lambdas come from timm (``cutmix_bbox_and_lam``); timm's ``Mixup`` itself
assumes integer class targets, so target mixing is done here to serve soft votes (HMS),
regression scores (PetFinder) and the ``max`` rule for SETI (a needle pasted in stays a needle).
"""
from __future__ import annotations

import numpy as np
import torch
from timm.data.mixup import cutmix_bbox_and_lam


def mix_targets(targets: torch.Tensor, perm: torch.Tensor, lam: float, mode: str) -> torch.Tensor:
    if mode == "max":
        return torch.maximum(targets, targets[perm])
    return lam * targets + (1.0 - lam) * targets[perm]


def cutmix(images: torch.Tensor, targets: torch.Tensor, alpha: float, mode: str,
           rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Paste a box of a shuffled batch into (N, C, H, W) images; lam = 1 - box area / image area."""
    lam = float(rng.beta(alpha, alpha))
    (y0, y1, x0, x1), lam = cutmix_bbox_and_lam(images.shape, lam, correct_lam=True)
    perm = torch.from_numpy(rng.permutation(images.shape[0]))
    mixed = images.clone()
    mixed[:, :, y0:y1, x0:x1] = images[perm][:, :, y0:y1, x0:x1]
    return mixed, mix_targets(targets, perm, lam, mode), lam


def mixup(images: torch.Tensor, targets: torch.Tensor, alpha: float, mode: str,
          rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Blend images with a shuffled batch: lam * x + (1 - lam) * x[perm]."""
    lam = float(rng.beta(alpha, alpha))
    perm = torch.from_numpy(rng.permutation(images.shape[0]))
    return lam * images + (1.0 - lam) * images[perm], mix_targets(targets, perm, lam, mode), lam


def mix_batch(images, targets, augment, rng: np.random.Generator):
    """With probability cutmix_p apply CutMix, else with probability mixup_p MixUp, else nothing."""
    draw = rng.random()
    if draw < augment.cutmix_p:
        images, targets, _ = cutmix(images, targets, augment.cutmix_alpha, augment.mix_label, rng)
    elif draw < augment.cutmix_p + (1.0 - augment.cutmix_p) * augment.mixup_p:
        images, targets, _ = mixup(images, targets, augment.mixup_alpha, augment.mix_label, rng)
    return images, targets
