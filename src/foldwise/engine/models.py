"""Models by timm name, with an optional tabular side input concatenated before the head."""
from __future__ import annotations

from pathlib import Path

import timm
import torch
from torch import nn

from ..core.errors import FoldwiseError


class FoldModel(nn.Module):
    """A timm backbone (pooled features) and a linear head over [features, meta].

    forward(images (N, C, H, W) float32, meta (N, n_meta) float32 or None) -> logits (N, num_outputs)
    """

    def __init__(self, backbone: nn.Module, num_outputs: int, n_meta: int = 0):
        super().__init__()
        self.backbone = backbone
        self.n_meta = n_meta
        self.head = nn.Linear(backbone.num_features + n_meta, num_outputs)

    def forward(self, images: torch.Tensor, meta: torch.Tensor | None = None) -> torch.Tensor:
        features = self.backbone(images)
        if self.n_meta:
            features = torch.cat([features, meta.to(features.dtype)], dim=1)
        return self.head(features)


def create_model(
    name: str, in_chans: int, num_outputs: int, n_meta: int = 0, pretrained: bool = False, weights: str = ""
) -> FoldModel:
    """Build ``name`` from timm. Weights are only ever read from the local file ``weights``."""
    if pretrained and not weights:
        raise FoldwiseError(
            "train.pretrained: true needs train.weights, a local weights file (foldwise never downloads weights)"
        )
    kwargs = {}
    if weights:
        if not Path(weights).is_file():
            raise FoldwiseError(f"train.weights: file not found: {weights}")
        kwargs["pretrained_cfg_overlay"] = {"file": str(Path(weights).resolve())}
    try:
        backbone = timm.create_model(
            name, pretrained=bool(weights), num_classes=0, in_chans=in_chans, **kwargs
        )
    except RuntimeError as exc:
        raise FoldwiseError(f"train.weights: {weights} does not fit model {name}: {str(exc).splitlines()[0]}") from None
    return FoldModel(backbone, num_outputs, n_meta)
