import pytest
import timm
import torch

from foldwise.core.errors import FoldwiseError
from foldwise.engine.models import create_model


def test_model_shapes_with_and_without_meta():
    model = create_model("resnet10t", in_chans=1, num_outputs=6)
    assert model(torch.randn(2, 1, 32, 32)).shape == (2, 6)
    with_meta = create_model("resnet10t", in_chans=3, num_outputs=1, n_meta=12)
    assert with_meta(torch.randn(2, 3, 32, 32), torch.randn(2, 12)).shape == (2, 1)
    assert with_meta.head.in_features == with_meta.backbone.num_features + 12


def test_local_weights_are_loaded_and_adapted_to_in_chans(tmp_path):
    torch.manual_seed(0)
    source = timm.create_model("resnet10t", pretrained=False)
    path = tmp_path / "resnet10t.pth"
    torch.save(source.state_dict(), path)
    model = create_model("resnet10t", in_chans=1, num_outputs=1, pretrained=True, weights=str(path))
    first_conv = source.state_dict()["conv1.0.weight"]
    # timm folds RGB weights into one input channel by summing them
    assert torch.allclose(model.backbone.state_dict()["conv1.0.weight"], first_conv.sum(dim=1, keepdim=True), atol=1e-6)
    assert torch.equal(model.backbone.state_dict()["layer1.0.conv1.weight"], source.state_dict()["layer1.0.conv1.weight"])


def test_pretrained_without_local_file_never_downloads(tmp_path):
    with pytest.raises(FoldwiseError, match="never downloads"):
        create_model("resnet10t", 1, 1, pretrained=True)
    with pytest.raises(FoldwiseError, match="file not found"):
        create_model("resnet10t", 1, 1, pretrained=True, weights=str(tmp_path / "nope.pth"))
