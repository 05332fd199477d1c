"""Models by timm name at any image size, with an optional tabular side input concatenated before the head."""
from __future__ import annotations

import difflib
import functools
from pathlib import Path
from typing import Sequence

import timm
import torch
from torch import nn

from ..core.errors import FoldwiseError


class FoldModel(nn.Module):
    """A timm backbone (pooled features) and a linear head over [features, meta].

    forward(images (N, C, H, W) float32, meta (N, n_meta) float32 or None) -> logits (N, num_outputs)

    ``input_affine`` (scale, shift), one value per channel, maps the prepared images onto the scale
    the pretrained weights expect (``x * scale + shift``) before the backbone; None leaves them as they are.
    """

    def __init__(self, backbone: nn.Module, num_outputs: int, n_meta: int = 0,
                 input_affine: tuple[Sequence[float], Sequence[float]] | None = None):
        super().__init__()
        self.backbone = backbone
        self.n_meta = n_meta
        self.head = nn.Linear(pooled_features(backbone) + n_meta, num_outputs)
        if input_affine is not None:
            scale, shift = (torch.tensor(v, dtype=torch.float32).view(1, -1, 1, 1) for v in input_affine)
            self.register_buffer("input_scale", scale)
            self.register_buffer("input_shift", shift)
        self.has_affine = input_affine is not None

    def forward(self, images: torch.Tensor, meta: torch.Tensor | None = None) -> torch.Tensor:
        if self.has_affine:
            images = images * self.input_scale + self.input_shift
        features = self.backbone(images)
        if self.n_meta:
            features = torch.cat([features, meta.to(features.dtype)], dim=1)
        return self.head(features)


def pooled_features(backbone: nn.Module) -> int:
    """Width of the backbone's pooled output with ``num_classes=0``.

    Models with a pre-logits layer (MobileNetV3/V4, GhostNet, HGNetV2) output ``head_hidden_size``
    features, not ``num_features``.
    """
    return getattr(backbone, "head_hidden_size", None) or backbone.num_features


def build_backbone(name: str, in_chans: int, img_size: int | None = None, weights: str = "") -> nn.Module:
    """timm's ``name`` without its classifier; ``img_size`` goes to models whose constructor takes it
    (ViT, DeiT, Swin, ...); CNNs, which reject the keyword, are built as they are. ``weights`` is a
    local file (safetensors or torch checkpoint) loaded through timm's pretrained path, which adapts
    the first conv to ``in_chans`` and resamples position embeddings to ``img_size``."""
    kwargs = {}
    if weights:
        if not Path(weights).is_file():
            raise FoldwiseError(f"train.weights: file not found: {weights}")
        kwargs["pretrained_cfg_overlay"] = {"file": str(Path(weights).resolve())}
    try:
        try:
            return timm.create_model(name, pretrained=bool(weights), num_classes=0, in_chans=in_chans,
                                     **kwargs, **({"img_size": img_size} if img_size else {}))
        except TypeError as exc:
            if "img_size" not in str(exc):
                raise
            return timm.create_model(name, pretrained=bool(weights), num_classes=0, in_chans=in_chans, **kwargs)
    except RuntimeError as exc:
        if not weights:
            raise
        raise FoldwiseError(f"{weights} does not fit model {name}: {str(exc).splitlines()[0]}") from None


def create_model(
    name: str, in_chans: int, num_outputs: int, n_meta: int = 0, img_size: int | None = None,
    weights: str = "", input_affine: tuple[Sequence[float], Sequence[float]] | None = None,
) -> FoldModel:
    """Build ``name`` from timm for (N, in_chans, img_size, img_size) images. Weights are only ever
    read from the local file ``weights`` (the ``pretrained`` stage puts them there)."""
    return FoldModel(build_backbone(name, in_chans, img_size, weights), num_outputs, n_meta, input_affine)


def probe_model(name: str, in_chans: int, img_size: int, n_meta: int = 0, num_outputs: int = 1) -> None:
    """Build ``name`` once and run one training-mode forward on a (2, in_chans, img_size, img_size)
    batch; raise ValueError with the first line of what went wrong if it cannot. Remembered per
    process, so re-validating the same params costs nothing."""
    problem = _probe(name, in_chans, img_size, n_meta, num_outputs)
    if problem:
        raise ValueError(problem)


def check_model(name: str, in_chans: int, img_size: int, n_meta: int, source: str = "params.yaml") -> None:
    """``model`` is a timm name (``arch`` or ``arch.tag``, with a did-you-mean) that builds and runs one
    forward on a batch of 2 at ``img_size`` with ``in_chans`` channels; ~0.1-3 s, once per process."""
    def bad(expected: str) -> None:
        raise FoldwiseError(f"{source}: 'model' must be {expected}, got {name!r}")

    if not timm.is_model(name):
        close = difflib.get_close_matches(name, timm.list_models(), n=3, cutoff=0.6)
        hint = f"did you mean {', '.join(close)}?" if close else "see timm.list_models()"
        bad(f"a timm model name ({hint})")
    if "." in name:
        arch, tag = name.split(".", 1)
        tags = [t.split(".", 1)[1] for t in timm.list_pretrained(arch + ".*")]
        if tag not in tags:
            bad(f"a timm model with a known pretrained tag ({', '.join(tags) or 'none'})")
    try:  # a 1-wide head: the width does not decide whether the model runs, and images.classes: [] is
        # known only once preprocess has read the train CSV
        probe_model(name, in_chans, img_size, n_meta)
    except ValueError as exc:
        raise FoldwiseError(f"{source}: 'model' {name} cannot run at 'img_size' {img_size} "
                            f"({in_chans} channels): {exc}") from None


@functools.lru_cache(maxsize=64)
def _probe(name: str, in_chans: int, img_size: int, n_meta: int, num_outputs: int) -> str:
    rng_state = torch.get_rng_state()  # building the probe must not move the caller's random stream
    try:
        model = create_model(name, in_chans, num_outputs, n_meta, img_size)
        model.train()
        with torch.no_grad():
            meta = torch.zeros(2, n_meta) if n_meta else None
            out = model(torch.zeros(2, in_chans, img_size, img_size), meta)
        if out.shape != (2, num_outputs):
            return f"output shape {tuple(out.shape)}, expected (2, {num_outputs})"
    except (RuntimeError, AssertionError, ValueError, TypeError, IndexError) as exc:
        lines = str(exc).strip().splitlines() or [type(exc).__name__]
        return lines[0]
    finally:
        torch.set_rng_state(rng_state)
    return ""
