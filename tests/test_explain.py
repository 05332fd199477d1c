"""Explanation maps (Grad-CAM through grad-cam, attention rollout), row picking and the overlays."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from foldwise.core.errors import FoldwiseError
from foldwise.engine.models import FoldModel, create_model
from foldwise.explain.maps import (TappedModel, attention_rollout, explained_output, feature_reshape, grad_cam,
                                   resolve_method)
from foldwise.explain.render import compose
from foldwise.prepared.display import to_display
from foldwise.stages.explain import describe, pick_rows
from foldwise.tasks import get_task
from foldwise.tasks.hms import kaggle_kl


class MeanBackbone(nn.Module):
    """A backbone whose feature map is the image (a 1x1 conv of weight 1) and whose feature is its mean."""

    num_features = 1

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 1)
        nn.init.ones_(self.conv.weight)
        nn.init.zeros_(self.conv.bias)

    def forward_features(self, x):
        return self.conv(x)

    def forward_head(self, x):
        return x.mean(dim=(2, 3))

    def forward(self, x):
        return self.forward_head(self.forward_features(x))


def tiny_vit() -> FoldModel:
    torch.manual_seed(0)
    backbone = VisionTransformer(img_size=32, patch_size=8, in_chans=1, embed_dim=32, depth=2, num_heads=2,
                                 num_classes=0)
    return FoldModel(backbone, num_outputs=1).eval()


@pytest.mark.parametrize("make", [lambda: create_model("resnet10t", 3, 2, n_meta=4), tiny_vit])
def test_tapped_model_computes_what_the_fold_model_does(make):
    torch.manual_seed(0)
    model = make().eval()
    chans = model.backbone.patch_embed.proj.in_channels if hasattr(model.backbone, "patch_embed") else 3
    images = torch.randn(2, chans, 32, 32)
    meta = torch.randn(1, model.n_meta) if model.n_meta else None
    with torch.no_grad():
        expected = model(images, None if meta is None else meta.expand(2, -1))
        assert torch.allclose(TappedModel(model, meta)(images), expected, atol=1e-5)


def test_grad_cam_points_at_what_drives_the_output():
    """logit = mean(image): the gradient is uniform, so Grad-CAM is the image itself, peaked where it is bright."""
    model = FoldModel(MeanBackbone(), num_outputs=1).eval()
    with torch.no_grad():
        model.head.weight.fill_(1.0)
        model.head.bias.zero_()
    image = torch.zeros(1, 1, 32, 32)
    image[..., 4:12, 20:28] = 1.0
    heat = grad_cam(model, image, None, output=0, model_name="mean")
    assert heat.shape == (32, 32) and heat.dtype == np.float32
    assert heat[4:12, 20:28].min() > 0.9 and heat[20:, :12].max() < 0.1
    # evidence against the output: the bright square lowers -logit, so the map is empty
    assert grad_cam(model, image, None, output=0, model_name="mean", sign=-1.0).max() == 0.0


def test_explained_output_is_the_predicted_class_or_side():
    assert explained_output(torch.tensor([0.1, 2.0, -1.0])) == (1, 1.0)
    assert explained_output(torch.tensor([0.7])) == (0, 1.0)
    assert explained_output(torch.tensor([-0.7])) == (0, -1.0)


def test_grad_cam_runs_on_a_cnn_and_on_vit_tokens():
    for model, chans in ((create_model("resnet10t", 1, 1).eval(), 1), (tiny_vit(), 1)):
        heat = grad_cam(model, torch.randn(1, chans, 32, 32), None, output=0, model_name="m")
        assert heat.shape == (32, 32) and 0.0 <= heat.min() and heat.max() <= 1.0


def test_attention_rollout_leaves_the_model_as_it_was():
    model = tiny_vit()
    image = torch.randn(1, 1, 32, 32)
    fused = [b.attn.fused_attn for b in model.backbone.blocks]
    with torch.no_grad():
        before = model(image)
    heat = attention_rollout(model, image, None)
    assert heat.shape == (32, 32) and heat.min() == 0.0 and heat.max() == pytest.approx(1.0)
    assert [b.attn.fused_attn for b in model.backbone.blocks] == fused
    assert all(not b.attn.attn_drop._forward_hooks for b in model.backbone.blocks)
    with torch.no_grad():
        assert torch.allclose(model(image), before, atol=1e-6)


def test_method_auto_picks_rollout_for_vits_and_gradcam_otherwise():
    cnn = create_model("resnet10t", 1, 1)
    assert resolve_method("auto", tiny_vit(), "vit") == "rollout"
    assert resolve_method("auto", cnn, "resnet10t") == "gradcam"
    assert resolve_method("gradcam", tiny_vit(), "vit") == "gradcam"
    with pytest.raises(FoldwiseError, match="explain.method: rollout needs a ViT-style model"):
        resolve_method("rollout", cnn, "resnet10t")
    with pytest.raises(FoldwiseError, match="neither Grad-CAM nor attention rollout"):
        feature_reshape(cnn.backbone, torch.zeros(2, 8), "odd")


def test_rows_are_picked_by_error_without_overlap():
    oof = pd.DataFrame({"id": list("abcdef"), "error": [0.5, 0.9, 0.1, 0.0, 0.7, 0.3]})
    picked = pick_rows(oof, n_worst=2, n_confident=2)
    assert list(picked["worst"]["id"]) == ["b", "e"]
    assert list(picked["confident"]["id"]) == ["d", "c"]
    many = pick_rows(oof, n_worst=4, n_confident=4)
    assert set(many["worst"]["id"]).isdisjoint(many["confident"]["id"]) and len(many["confident"]) == 2


def test_row_errors_follow_each_task():
    y, p = np.array([[1.0], [0.0]]), np.array([[0.25], [0.5]])
    assert np.allclose(get_task("seti").row_error(y, p), [0.75, 0.5])
    rng = np.random.default_rng(0)
    votes, probs = rng.integers(0, 4, (5, 6)).astype(float) + 1, rng.dirichlet(np.ones(6), 5)
    rows = get_task("hms").row_error(votes, probs)
    assert rows.shape == (5,) and rows.mean() == pytest.approx(kaggle_kl(votes, probs))


def test_titles_name_true_and_predicted():
    seti = get_task("seti")
    row = pd.Series({"true_target": 1.0, "target": 0.125, "error": 0.875})
    assert describe(seti, row) == "true 1  pred 0.125  |pred - true| 0.875"
    hms = get_task("hms")
    values = {f"true_{c}": float(i == 2) for i, c in enumerate(hms.target_columns)}
    values |= {c: float(i == 4) for i, c in enumerate(hms.pred_columns)} | {"error": 3.2}
    text = describe(hms, pd.Series(values))
    assert text.startswith(f"true {hms.target_columns[2]} 1.00  pred {hms.pred_columns[4]} 1.00") and "KL 3.2" in text


def test_overlay_image_layout():
    gray = to_display(np.stack([np.zeros((8, 8)), np.ones((8, 8))], axis=2), rgb=False)
    assert gray.shape == (8, 8, 3) and np.allclose(gray, 0.0)  # channel mean is flat
    photo = np.zeros((8, 8, 3), np.float32)
    photo[..., 0] = 1.0
    shown = to_display(photo, rgb=True)
    assert shown[..., 0].min() == 1.0 and shown[..., 1].max() == 0.0
    image = compose(shown, np.zeros((8, 8), np.float32), ["a", "b"], min_side=64)
    assert image.size == (2 * 64 + 4, 64 + 2 * 16 + 6)
