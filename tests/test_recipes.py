"""Every write-up recipe in conf/recipe/ (`dvc exp run -S recipe=<name>`) composes as DVC composes it,
selects its own task, loads and validates (default run), and trains one epoch on tiny synthetic data
with weights from a tiny local hub cache (slow)."""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import ROOT, write_composed
from foldwise import conf
from foldwise.stages.params import load_params, parse_params

RECIPES = conf.recipes(ROOT / "conf")


def compose_recipe(name: str) -> dict:
    return conf.compose([f"recipe={name}"], ROOT / "conf")


def recipe_values(name: str) -> dict:
    """The values written in conf/recipe/<name>.yaml (its defaults list left out)."""
    from omegaconf import OmegaConf

    values = OmegaConf.to_container(OmegaConf.load(ROOT / "conf" / "recipe" / f"{name}.yaml"))
    values.pop("defaults", None)
    return values


def leaves(composed: dict, shape: dict) -> dict:
    """``composed`` cut down to the keys of ``shape`` (nested)."""
    return {k: leaves(composed[k], v) if isinstance(v, dict) else composed[k] for k, v in shape.items()}


def test_the_write_ups_have_recipes():
    assert RECIPES == ["hms_resnet34d", "mask_resnet18", "petfinder_vit", "seti_efficientnet", "seti_swin"]


@pytest.mark.parametrize("name", RECIPES)
def test_every_recipe_composes_selects_its_task_and_validates(name):
    from foldwise.engine.pretrained import pretrained_cfg
    from foldwise.engine.training import check_mixing
    from foldwise.engine.transforms import check_augment_spec
    from foldwise.tasks import get_task

    composed = compose_recipe(name)
    task = name.split("_")[0]
    assert composed["task"] == task  # through the recipe's `override /task`
    p = parse_params(copy.deepcopy(composed), source=f"conf recipe={name}", check_names=False)  # it pops task groups
    check_augment_spec(p.augment.train, "augment.train")
    check_mixing(get_task(task).loss(p), p.augment, task)  # as the train stage checks it
    assert p.train.pretrained and pretrained_cfg(p.model).hf_hub_id  # timm knows these weights
    # a recipe's own values win over its task's defaults, and -S key=value over both
    assert leaves(composed, recipe_values(name)) == recipe_values(name)
    assert conf.compose([f"recipe={name}", "epochs=1"], ROOT / "conf")["epochs"] == 1


def test_the_mask_recipe_is_the_write_ups_cutmix_on_the_multi_head_model():
    composed = compose_recipe("mask_resnet18")
    assert composed["augment"]["cutmix_p"] > 0 and composed["mask"]["head"] == "multi"
    task_defaults = conf.compose(["task=mask"], ROOT / "conf")
    assert composed["epochs"] == task_defaults["epochs"] != conf.compose([], ROOT / "conf")["epochs"]  # what it leaves open


@pytest.mark.slow
@pytest.mark.parametrize("name", RECIPES)
def test_every_recipe_trains_one_epoch_on_tiny_data(tmp_path, monkeypatch, name):
    from foldwise.engine.inference import load_fold_model
    from foldwise.engine.pretrained import pretrained_cfg, read_pretrained
    from foldwise.stages import download, pretrained, preprocess, split, train
    from test_pretrained import build_hub_cache

    params = compose_recipe(name)
    hub_name = pretrained_cfg(params["model"]).hf_hub_id.split("/", 1)[1]
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    build_hub_cache(tmp_path / "hf", hub_name)
    n_train = 100 if params["task"] == "hms" else 40  # HMS: every vote class in both folds' split
    tiny = {"epochs": 1, "folds": [0, 1], "n_splits": 2, "synthetic": {"n_train": n_train, "n_test": 4}}
    if params["train"]["warmup_epochs"] >= 1:  # the params check wants warmup < epochs (1 here)
        tiny["train"] = {"warmup_epochs": 0.5}
    write_composed(tmp_path, [f"recipe={name}"], tiny)
    monkeypatch.chdir(tmp_path)
    download.main(["--out", "data/raw"])
    pretrained.main(["--out", "data/pretrained"])
    preprocess.main(["--raw", "data/raw", "--out", "data/prepared"])
    split.main(["--index", "data/prepared/train.csv", "--out", "data/folds.csv"])
    train.main(["--fold", "0", "--prepared", "data/prepared", "--folds", "data/folds.csv", "--out", "data/models/fold_0",
                "--live", "metrics/train/fold_0", "--checkpoint", "data/checkpoints/fold_0",
                "--pretrained", "data/pretrained"])
    assert read_pretrained(Path("data/pretrained"))["source"] == f"hf-hub:timm/{hub_name}"
    history = (Path("data/models/fold_0") / "history.csv").read_text().splitlines()
    assert len(history) == 2  # header + the one epoch
    p = load_params()
    model = load_fold_model(Path("data/models/fold_0"), torch.device("cpu"), channels_last=False).eval()
    shape = np.load(sorted(Path("data/prepared").glob("train_*.npy"))[0], mmap_mode="r").shape
    x = torch.zeros(2, shape[-1], p.img_size, p.img_size)
    with torch.no_grad():
        assert torch.isfinite(model(x, torch.zeros(2, model.n_meta) if model.n_meta else None)).all()
