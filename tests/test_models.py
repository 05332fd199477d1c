import pytest
import timm
import torch

from foldwise.core.errors import FoldwiseError
from foldwise.stages.params import parse_params
from foldwise.engine.inference import load_fold_model, save_fold_model
from foldwise.engine.models import create_model, pooled_features, probe_model


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
    model = create_model("resnet10t", in_chans=1, num_outputs=1, weights=str(path))
    first_conv = source.state_dict()["conv1.0.weight"]
    # timm folds RGB weights into one input channel by summing them
    assert torch.allclose(model.backbone.state_dict()["conv1.0.weight"], first_conv.sum(dim=1, keepdim=True), atol=1e-6)
    assert torch.equal(model.backbone.state_dict()["layer1.0.conv1.weight"], source.state_dict()["layer1.0.conv1.weight"])


def test_missing_weights_file_is_one_line(tmp_path):
    with pytest.raises(FoldwiseError, match="file not found"):
        create_model("resnet10t", 1, 1, weights=str(tmp_path / "nope.pth"))


def test_head_is_sized_from_head_hidden_size():
    """MobileNetV3's pooled output is its 1024-wide pre-logits layer, not num_features (576)."""
    model = create_model("mobilenetv3_small_050", in_chans=1, num_outputs=2, img_size=64)
    assert model.backbone.head_hidden_size != model.backbone.num_features
    assert model.head.in_features == pooled_features(model.backbone) == model.backbone.head_hidden_size
    assert model(torch.randn(2, 1, 64, 64)).shape == (2, 2)


def test_transformer_gets_img_size_and_cnn_ignores_it():
    vit = create_model("vit_tiny_patch16_224", in_chans=1, num_outputs=1, img_size=64)
    assert vit.backbone.patch_embed.img_size == (64, 64)
    assert vit(torch.randn(2, 1, 64, 64)).shape == (2, 1)
    torch.manual_seed(0)
    cnn = create_model("resnet10t", 1, 1, img_size=64)
    torch.manual_seed(0)
    plain = create_model("resnet10t", 1, 1)
    assert all(torch.equal(a, b) for a, b in zip(cnn.state_dict().values(), plain.state_dict().values()))


def test_model_that_cannot_run_at_img_size_is_refused_by_params_check():
    with pytest.raises(ValueError, match="Kernel size"):
        probe_model("inception_v3", 1, 64)
    with pytest.raises(FoldwiseError) as err:
        parse_params({"model": "inception_v3", "img_size": 64})
    message = str(err.value)
    assert "'model' inception_v3 cannot run at 'img_size' 64" in message and "\n" not in message


def test_unknown_model_and_tag_are_refused():
    with pytest.raises(FoldwiseError, match="'model' must be a timm model name"):
        parse_params({"model": "resnet10"})
    with pytest.raises(FoldwiseError, match="known pretrained tag.*c3_in1k"):
        parse_params({"model": "resnet10t.bogus"})
    assert parse_params({"model": "resnet10t.c3_in1k"}).model == "resnet10t.c3_in1k"


def test_saved_fold_model_rebuilds_at_its_img_size_with_its_input_remap(tmp_path):
    torch.manual_seed(0)
    config = {"model": "vit_tiny_patch16_224", "in_chans": 3, "num_outputs": 1, "n_meta": 0,
              "img_size": 32, "input_affine": ([2.0, 1.0, 0.5], [0.1, -0.2, 0.3])}
    model = create_model(config["model"], 3, 1, img_size=32, input_affine=config["input_affine"]).eval()
    save_fold_model(tmp_path / "model.pt", model, config)
    loaded = load_fold_model(tmp_path, torch.device("cpu"), channels_last=False)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(loaded(x), model(x))
    assert torch.equal(loaded.input_scale.flatten(), torch.tensor([2.0, 1.0, 0.5]))
