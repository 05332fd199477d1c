"""Saliency maps of a fold model for one image: Grad-CAM (the ``grad-cam`` package) or attention rollout.

Both return a float32 map (H, W) in [0, 1] at the input's resolution, for one image (1, C, H, W).

Grad-CAM runs on the backbone's final feature map, reached generically by splitting the timm backbone
at ``forward_features`` / ``forward_head`` (every timm model has both), so it applies to CNNs (NCHW
maps), Swin-style models (NHWC maps) and ViTs (token sequences, reshaped to the patch grid).
Attention rollout (Abnar & Zuidema, 2020) needs the attention probabilities of every block; grad-cam
has no rollout, so it is done here: each timm ``Attention`` is switched to its unfused path and the
output of its ``attn_drop`` (the softmaxed attention, (N, heads, T, T)) is recorded by a hook.
"""
from __future__ import annotations

import contextlib
import math
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..core.errors import FoldwiseError
from ..engine.models import FoldModel

METHODS = ("auto", "gradcam", "rollout")


class TappedModel(nn.Module):
    """A FoldModel with an identity ``tap`` on the backbone's final feature map, for hooks.

    forward(images (N, C, H, W)) -> logits (N, num_outputs); ``meta`` (1, n_meta) or None is held
    fixed because grad-cam calls the model with the images alone.
    """

    def __init__(self, model: FoldModel, meta: torch.Tensor | None):
        super().__init__()
        self.model = model
        self.tap = nn.Identity()
        self.meta = meta

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        backbone = self.model.backbone
        if self.model.has_affine:  # the pretrained weights' normalisation, as FoldModel.forward does it
            images = images * self.model.input_scale + self.model.input_shift
        features = backbone.forward_head(self.tap(backbone.forward_features(images)))
        if self.model.n_meta:
            features = torch.cat([features, self.meta.expand(len(features), -1).to(features.dtype)], dim=1)
        return self.model.head(features)


def is_vit_like(backbone: nn.Module) -> bool:
    """Global self-attention over patch tokens with timm's ``Attention`` (ViT, DeiT, BEiT-style)."""
    blocks = getattr(backbone, "blocks", None)
    if blocks is None or not hasattr(backbone, "patch_embed") or len(blocks) == 0:
        return False
    return all(hasattr(getattr(b, "attn", None), "fused_attn") and hasattr(b.attn, "attn_drop") for b in blocks)


def resolve_method(method: str, model: FoldModel, model_name: str) -> str:
    """``auto`` -> rollout for ViT-style backbones, Grad-CAM otherwise; an impossible choice is an error."""
    vit = is_vit_like(model.backbone)
    if method == "auto":
        return "rollout" if vit else "gradcam"
    if method == "rollout" and not vit:
        raise FoldwiseError(
            f"explain.method: rollout needs a ViT-style model (timm blocks[i].attn), not {model_name}; use gradcam or auto"
        )
    return method


def _patch_grid(backbone: nn.Module, n_tokens: int) -> tuple[int, int]:
    grid = getattr(getattr(backbone, "patch_embed", None), "grid_size", None)
    if grid is not None and grid[0] * grid[1] == n_tokens:
        return int(grid[0]), int(grid[1])
    side = math.isqrt(n_tokens)
    if side * side != n_tokens:
        raise FoldwiseError(f"explain: {n_tokens} patch tokens do not form a square grid")
    return side, side


def feature_reshape(backbone: nn.Module, features: torch.Tensor, model_name: str) -> Callable | None:
    """How to turn the final features into an NCHW map for Grad-CAM (None: already NCHW)."""
    if features.ndim == 4:
        if getattr(backbone, "output_fmt", "NCHW") == "NHWC":
            return lambda t: t.permute(0, 3, 1, 2)
        return None
    if features.ndim == 3:
        prefix = int(getattr(backbone, "num_prefix_tokens", 0))
        h, w = _patch_grid(backbone, features.shape[1] - prefix)
        return lambda t: t[:, prefix:].reshape(t.shape[0], h, w, t.shape[2]).permute(0, 3, 1, 2)
    raise FoldwiseError(
        f"model {model_name}: final features of shape {tuple(features.shape)} are neither a feature map nor "
        "patch tokens; neither Grad-CAM nor attention rollout applies (set explain.n_worst and "
        "explain.n_confident to 0 to skip the explain stage's images)"
    )


class SignedOutput:
    """grad-cam target: ``sign`` * logit ``output`` of the model's (num_outputs,) or (N, num_outputs) output."""

    def __init__(self, output: int, sign: float = 1.0):
        self.output, self.sign = output, sign

    def __call__(self, model_output: torch.Tensor) -> torch.Tensor:
        return self.sign * model_output[..., self.output]


def explained_output(logits: torch.Tensor) -> tuple[int, float]:
    """What the map explains, from one row's logits (num_outputs,): the predicted class of a
    multi-class model; for a single output, the side it predicts (a negative logit is explained as
    evidence *against*, so a confident "no" is not an empty map)."""
    if len(logits) > 1:
        return int(logits.argmax()), 1.0
    return 0, 1.0 if float(logits[0]) >= 0 else -1.0


def grad_cam(model: FoldModel, image: torch.Tensor, meta: torch.Tensor | None, output: int,
             model_name: str, sign: float = 1.0) -> np.ndarray:
    """Grad-CAM of ``sign`` * logit ``output`` for ``image`` (1, C, H, W) -> (H, W) float32 in [0, 1]."""
    from pytorch_grad_cam import GradCAM

    tapped = TappedModel(model, meta).eval()
    with torch.no_grad():
        features = model.backbone.forward_features(image)
    reshape = feature_reshape(model.backbone, features, model_name)
    with GradCAM(model=tapped, target_layers=[tapped.tap], reshape_transform=reshape) as cam:
        heat = cam(input_tensor=image, targets=[SignedOutput(output, sign)])
    return np.asarray(heat[0], dtype=np.float32)


@contextlib.contextmanager
def _recorded_attention(blocks: nn.Module):
    """Record every block's attention probabilities (N, heads, T, T) during the forward passes inside."""
    probs: list[torch.Tensor] = []
    saved = [b.attn.fused_attn for b in blocks]
    hooks = []
    for block in blocks:
        block.attn.fused_attn = False  # the fused kernel never materialises the probabilities
        hooks.append(block.attn.attn_drop.register_forward_hook(lambda m, i, out: probs.append(out.detach())))
    try:
        yield probs
    finally:
        for block, fused in zip(blocks, saved):
            block.attn.fused_attn = fused
        for hook in hooks:
            hook.remove()


@torch.no_grad()
def attention_rollout(model: FoldModel, image: torch.Tensor, meta: torch.Tensor | None) -> np.ndarray:
    """Attention rollout for ``image`` (1, C, H, W) -> (H, W) float32 in [0, 1].

    Per block: mean over heads, plus the identity for the residual path, rows renormalised; the
    product over blocks says how much each input token feeds each output token. The map is the
    class token's row over the patch tokens (models without prefix tokens: the mean over all rows).
    """
    backbone = model.backbone
    with _recorded_attention(backbone.blocks) as probs:
        model.eval()(image, meta)
    if len(probs) != len(backbone.blocks):
        raise FoldwiseError(f"explain: recorded {len(probs)} attention maps for {len(backbone.blocks)} blocks")
    n_tokens = probs[0].shape[-1]
    eye = torch.eye(n_tokens, device=probs[0].device)
    rollout = eye
    for attn in probs:
        mixed = attn[0].float().mean(0) + eye
        rollout = (mixed / mixed.sum(-1, keepdim=True)) @ rollout
    prefix = int(getattr(backbone, "num_prefix_tokens", 0))
    weights = rollout[0, prefix:] if prefix else rollout.mean(0)
    h, w = _patch_grid(backbone, n_tokens - prefix)
    heat = F.interpolate(weights.reshape(1, 1, h, w), size=image.shape[-2:], mode="bilinear", align_corners=False)[0, 0]
    heat = heat - heat.min()
    return (heat / heat.max().clamp_min(1e-12)).cpu().numpy().astype(np.float32)


def saliency(method: str, model: FoldModel, image: torch.Tensor, meta: torch.Tensor | None, output: int,
             model_name: str, sign: float = 1.0) -> np.ndarray:
    """The map of a resolved ``method`` (gradcam | rollout): (H, W) float32 in [0, 1]."""
    if method == "rollout":
        return attention_rollout(model, image, meta)
    return grad_cam(model, image, meta, output, model_name, sign)
