"""Pretrained weights from a tiny local Hugging Face cache, offline: nothing here reaches the network."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
import yaml
from safetensors.torch import load_file, save_file

from foldwise.core.errors import FoldwiseError
from foldwise.engine.models import create_model
from foldwise.engine.pretrained import (
    IMAGENET_MEAN, IMAGENET_STD, SOURCE_FILE, WEIGHTS_FILE, input_affine, read_pretrained, write_pretrained,
)

REVISION = "0123456789abcdef0123456789abcdef01234567"


def build_hub_cache(hf_home: Path, name: str, seed: int = 0) -> tuple[Path, dict]:
    """Write ``name``'s (``arch.tag``) seeded random weights where timm looks offline:
    ``$HF_HOME/hub/models--timm--<arch.tag>/snapshots/<rev>/model.safetensors`` plus ``refs/main``.
    Returns the file and the state dict it holds."""
    torch.manual_seed(seed)
    state = timm.create_model(name.split(".")[0], pretrained=False).state_dict()
    repo = hf_home / "hub" / f"models--timm--{name}"
    snapshot = repo / "snapshots" / REVISION
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(REVISION)
    save_file({k: v.contiguous() for k, v in state.items()}, str(snapshot / "model.safetensors"))
    return snapshot / "model.safetensors", state


@pytest.fixture
def hf_home(tmp_path, monkeypatch):
    home = tmp_path / "hf"
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return home


def test_default_tag_is_copied_byte_for_byte_from_the_cache(hf_home, tmp_path):
    cached, state = build_hub_cache(hf_home, "resnet10t.c3_in1k")
    info = write_pretrained(tmp_path / "out", "resnet10t", pretrained=True, weights="")
    written = tmp_path / "out" / WEIGHTS_FILE
    assert written.read_bytes() == cached.read_bytes()
    assert info["source"] == "hf-hub:timm/resnet10t.c3_in1k" and info["revision"] == REVISION
    assert json.loads((tmp_path / "out" / SOURCE_FILE).read_text())["sha256"] == info["sha256"]
    assert read_pretrained(tmp_path / "out")["mean"] == list(IMAGENET_MEAN)
    assert (info["matched_by"], info["matched"], info["backbone_tensors"], info["classifier"]) == ("name", 70, 70, "kept")
    # the train model starts from exactly those weights (first conv folded to 1 channel by timm)
    model = create_model("resnet10t", 1, 1, img_size=64, weights=str(written))
    got = model.backbone.state_dict()
    assert torch.equal(got["layer2.0.conv1.weight"], state["layer2.0.conv1.weight"])
    assert torch.allclose(got["conv1.0.weight"], state["conv1.0.weight"].sum(1, keepdim=True), atol=1e-6)


def test_explicit_tag_and_a_transformer_at_another_size(hf_home, tmp_path):
    _, state = build_hub_cache(hf_home, "vit_tiny_patch16_224.augreg_in21k_ft_in1k")
    info = write_pretrained(tmp_path / "out", "vit_tiny_patch16_224.augreg_in21k_ft_in1k", True, "")
    assert info["mean"] == [0.5, 0.5, 0.5]
    model = create_model("vit_tiny_patch16_224", 3, 1, img_size=64, weights=str(tmp_path / "out" / WEIGHTS_FILE))
    got = model.backbone.state_dict()
    assert torch.equal(got["blocks.0.attn.qkv.weight"], state["blocks.0.attn.qkv.weight"])
    assert got["pos_embed"].shape[1] == 1 + (64 // 16) ** 2  # resampled from 14x14 to 4x4 patches


def test_weights_missing_from_cache_is_one_line_naming_both_ways(hf_home, tmp_path):
    with pytest.raises(FoldwiseError) as err:
        write_pretrained(tmp_path / "out", "resnet10t", pretrained=True, weights="")
    message = str(err.value)
    assert "\n" not in message
    assert "model resnet10t tag c3_in1k" in message and "HF_HUB_OFFLINE=1" in message
    assert "models--timm--resnet10t.c3_in1k" in message and "train.weights: FILE" in message
    assert not (tmp_path / "out").exists()  # nothing half-written


def test_local_file_wins_and_not_pretrained_writes_only_a_marker(hf_home, tmp_path):
    torch.manual_seed(1)
    state = timm.create_model("resnet10t").state_dict()
    torch.save({"state_dict": state}, tmp_path / "mine.pth")  # a torch checkpoint, wrapped
    info = write_pretrained(tmp_path / "out", "resnet10t", pretrained=False, weights=str(tmp_path / "mine.pth"))
    assert info["source"].startswith("file:")
    assert torch.equal(load_file(str(tmp_path / "out" / WEIGHTS_FILE))["fc.weight"], state["fc.weight"])
    write_pretrained(tmp_path / "none", "resnet10t", pretrained=False, weights="")
    assert sorted(os.listdir(tmp_path / "none")) == [SOURCE_FILE]
    assert read_pretrained(tmp_path / "none") == {"pretrained": False, "model": "resnet10t"}


def test_input_remap_only_for_imagenet_scaled_images_and_other_mean_std():
    vit = {"pretrained": True, "mean": [0.5] * 3, "std": [0.5] * 3}
    scale, shift = map(np.asarray, input_affine(vit, "imagenet", 3))
    unit = np.array([0.2, 0.6, 0.9])  # an RGB pixel in [0, 1]
    prepared = (unit - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)  # what PetFinder's preprocess stores
    assert np.allclose(prepared * scale + shift, (unit - 0.5) / 0.5)
    assert input_affine(vit, "standardised", 1) is None  # SETI / HMS: already mean 0, std 1 per image
    assert input_affine({"pretrained": True, "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)}, "imagenet", 3) is None
    assert input_affine({"pretrained": False}, "imagenet", 3) is None
    assert len(input_affine(vit, "imagenet", 4)[0]) == 4


def test_pretrained_stage_writes_its_output_and_refuses_a_model_at_a_size_it_cannot_run(hf_home, tmp_path, monkeypatch):
    from foldwise.stages import pretrained as stage
    from test_params import base

    build_hub_cache(hf_home, "resnet10t.c3_in1k")
    monkeypatch.chdir(tmp_path)
    raw = base()
    raw["train"]["pretrained"] = True
    Path("params.yaml").write_text(yaml.safe_dump(raw))
    stage.main(["--out", "data/pretrained"])
    assert read_pretrained(Path("data/pretrained"))["revision"] == REVISION
    raw.update(model="inception_v3", img_size=64)
    Path("params.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(FoldwiseError, match="'model' inception_v3 cannot run at 'img_size' 64"):
        stage.main(["--out", "data/other"])
    assert not Path("data/other").exists()


def test_pretrained_stage_fails_when_no_cached_tensor_fits_the_model(hf_home, tmp_path, monkeypatch):
    """A cache entry holding another network's weights (here mobilenetv3's under resnet10t's name)
    would load nothing: the stage stops in one line instead of training from random weights."""
    from foldwise.stages import pretrained as stage
    from test_params import base

    cached, _ = build_hub_cache(hf_home, "resnet10t.c3_in1k")
    torch.manual_seed(0)
    save_file(timm.create_model("mobilenetv3_small_050").state_dict(), str(cached))
    monkeypatch.chdir(tmp_path)
    raw = base()
    raw["train"]["pretrained"] = True
    Path("params.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(FoldwiseError) as err:
        stage.main(["--out", "data/pretrained"])
    assert "\n" not in str(err.value)
    assert str(err.value).startswith(f"train.pretrained: {cached}: no tensor matches model resnet10t")
    assert not Path("data/pretrained").exists()

