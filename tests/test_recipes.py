"""The recipes page's table of the write-ups as `dvc exp run` one-liners stays true: every row's `-S` list
applies to params.yaml as DVC applies it and loads (default run), and every row trains one epoch
on tiny synthetic data with weights from a tiny local hub cache (slow)."""
from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from foldwise.stages.params import load_params

ROOT = Path(__file__).resolve().parents[1]
SECTION = "## The write-ups as one-liners"


def recipe_rows() -> list[tuple[str, list[str]]]:
    """(write-up cell, its -S overrides) of every row of the recipes page's table."""
    text = (ROOT / "docs" / "how-to" / "recipes.md").read_text()
    section = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        match = re.match(r"\| ([^|`]+?) \| `(dvc exp run [^`]+)` \|", line)
        if match:
            tokens = shlex.split(match.group(2))
            assert tokens[:3] == ["dvc", "exp", "run"] and len(tokens) % 2 == 1, line
            flags, values = tokens[3::2], tokens[4::2]
            assert set(flags) == {"-S"}, f"only -S overrides belong in a recipe row: {line}"
            rows.append((match.group(1), values))
    return rows


ROWS = recipe_rows()
IDS = [name.split(" (")[0].replace(" ", "-") for name, _ in ROWS]


def apply_row(dest: Path, overrides: list[str], extra: dict | None = None) -> Path:
    """params.yaml in ``dest`` with ``overrides`` applied by DVC's own `-S` code, then ``extra`` merged."""
    from dvc.utils.hydra import apply_overrides

    from conftest import edit_params

    path = dest / "params.yaml"
    shutil.copy(ROOT / "params.yaml", path)
    apply_overrides(path, overrides)
    if extra:
        edit_params(path, extra)
    return path


def test_the_recipes_page_has_the_four_write_ups():
    assert IDS == ["SETI-Swin-write-up", "PetFinder-ViT-write-up", "HMS-ResNet34d-write-up",
                   "PyTorch-Lightning-study-notes"]


@pytest.mark.parametrize("overrides", [v for _, v in ROWS], ids=IDS)
def test_every_row_applies_as_dvc_applies_it_and_loads(tmp_path, overrides):
    from foldwise.engine.pretrained import pretrained_cfg
    from foldwise.engine.transforms import check_augment_spec

    p = load_params(apply_row(tmp_path, overrides), check_names=False)
    check_augment_spec(p.augment.train, "augment.train")
    given = dict(o.split("=", 1) for o in overrides)
    assert p.model == given["model"] and p.task == given["task"]
    assert p.train.pretrained and pretrained_cfg(p.model).hf_hub_id  # timm knows these weights
    if "img_size" in given:
        assert p.img_size == int(given["img_size"])
    if "augment.train" in given:  # DVC's Hydra parse of the list is the YAML one
        assert p.augment.train == yaml.safe_load(given["augment.train"])


@pytest.mark.slow
@pytest.mark.parametrize("overrides", [v for _, v in ROWS], ids=IDS)
def test_every_row_trains_one_epoch_on_tiny_data(tmp_path, monkeypatch, overrides):
    from foldwise.engine.inference import load_fold_model
    from foldwise.engine.pretrained import pretrained_cfg, read_pretrained
    from foldwise.stages import download, pretrained, preprocess, split, train
    from test_pretrained import build_hub_cache

    given = dict(o.split("=", 1) for o in overrides)
    hub_name = pretrained_cfg(given["model"]).hf_hub_id.split("/", 1)[1]
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    build_hub_cache(tmp_path / "hf", hub_name)
    n_train = 100 if given["task"] == "hms" else 40  # HMS: every vote class in both folds' split
    tiny = {"epochs": 1, "folds": [0, 1], "n_splits": 2, "synthetic": {"n_train": n_train, "n_test": 4}}
    if float(given.get("train.warmup_epochs", 0)) >= 1:  # the params check wants warmup < epochs (1 here)
        tiny["train"] = {"warmup_epochs": 0.5}
    apply_row(tmp_path, overrides, tiny)
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
