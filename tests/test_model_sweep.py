"""timm families through foldwise's model builder at 64 and 224 px: each either trains one
optimizer step on a batch of 2 or is refused by the params check in one line naming model and
img_size. The 14 models that once failed at 64 px run by default; ``pytest -m slow`` adds 24 more
families at 64 px and the 14 at their native 224 px (the other families at 224 px cost minutes and
test nothing the 64 px row does not: each is built for 224)."""
from __future__ import annotations

import pytest
import torch

from foldwise.core.errors import FoldwiseError
from foldwise.stages.params import parse_params
from foldwise.engine.models import create_model

# the 14 that once failed at 64 px: pooled width != num_features, no img_size, or too small a size
SIZE_SENSITIVE = [
    "mobilenetv3_small_050", "mobilenetv3_large_100", "mobilenetv4_conv_small", "ghostnet_100", "hgnetv2_b0",
    "vit_tiny_patch16_224", "deit_tiny_patch16_224", "swin_tiny_patch4_window7_224", "eva02_tiny_patch14_224",
    "coat_lite_tiny", "inception_v3", "levit_128s", "maxvit_nano_rw_256", "efficientformerv2_s0",
]
# the smallest variant of 24 more families
OTHERS = [
    "resnet10t", "resnext26ts", "efficientnet_b0", "efficientnetv2_rw_t", "mobilenetv2_050", "regnetx_002",
    "convnext_atto", "convnextv2_atto", "mixnet_s", "rexnet_100", "dla34", "dpn48b", "hrnet_w18_small",
    "poolformerv2_s12", "fastvit_t8", "edgenext_xx_small", "tiny_vit_5m_224", "repvit_m1", "efficientvit_b0",
    "mobilevitv2_050", "xcit_nano_12_p16_224", "pit_ti_224", "starnet_s1", "ese_vovnet19b_dw",
]
# what the params check refuses (one line naming model and img_size) instead of training
REFUSED = {("inception_v3", 64)}

CASES = [pytest.param(name, 64, id=f"{name}-64") for name in SIZE_SENSITIVE]
CASES += [pytest.param(name, 64, id=f"{name}-64", marks=pytest.mark.slow) for name in OTHERS]
CASES += [pytest.param(name, 224, id=f"{name}-224", marks=pytest.mark.slow) for name in SIZE_SENSITIVE]


def test_sweep_covers_thirty_families():
    assert len(set(SIZE_SENSITIVE + OTHERS)) >= 30


@pytest.mark.parametrize("name,size", CASES)
def test_model_trains_one_step_or_is_refused_in_one_line(name, size):
    raw = {"model": name, "img_size": size}  # SETI defaults: 1 channel, 1 output
    if (name, size) in REFUSED:
        with pytest.raises(FoldwiseError) as err:
            parse_params(raw)
        assert f"'model' {name} cannot run at 'img_size' {size}" in str(err.value)
        assert "\n" not in str(err.value)
        return
    assert parse_params(raw).model == name  # the params check builds and runs it once
    torch.manual_seed(0)
    model = create_model(name, in_chans=1, num_outputs=1, img_size=size).train()
    before = model.head.weight.detach().clone()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loss = torch.nn.functional.binary_cross_entropy_with_logits(
        model(torch.randn(2, 1, size, size)), torch.tensor([[0.0], [1.0]]))
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss)
    assert not torch.equal(model.head.weight, before)
