"""Stage eda: class balance per fold, raw sample sizes and sample grids as DVC plot files."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from foldwise.stages import eda, preprocess, split
from foldwise.prepared.display import to_display, to_display_bytes
from foldwise.stages.eda import balance_rows, class_membership, grid_file, sample_grid
from foldwise.tasks import get_task

ROOT = Path(__file__).resolve().parents[1]


def test_binary_and_multiclass_membership():
    binary = class_membership("binary", pd.DataFrame({"target": [0.0, 1.0, 1.0]}), pd.Series([0, 1, 1]), 5)
    assert list(binary.columns) == ["target=0", "target=1"]
    assert binary.to_numpy().tolist() == [[True, False], [False, True], [False, True]]
    votes = pd.DataFrame({"a_vote": [0.2, 0.7, 0.1], "b_vote": [0.5, 0.2, 0.1], "c_vote": [0.3, 0.1, 0.8]})
    named = class_membership("multiclass", votes, pd.Series([1, 0, 2]), 5, ["A", "B", "C"])
    assert list(named.columns) == ["A", "B", "C"]
    assert named.to_numpy().argmax(axis=1).tolist() == [1, 0, 2]  # argmax of the votes
    index = class_membership("multiclass", pd.DataFrame({"label": [2.0, 0.0, 2.0]}), pd.Series([2, 0, 2]), 5,
                             ["cat", "dog", "fox"])
    assert index.sum().tolist() == [1, 0, 2]


def test_regression_bins_and_multilabel():
    y = pd.DataFrame({"score": [1.0, 10.0, 50.0, 100.0]})
    bins = class_membership("regression", y, pd.Series([0, 0, 1, 1]), 4)
    assert bins.shape == (4, 4) and (bins.sum(axis=1) == 1).all()
    assert bins.sum().tolist() == [2, 1, 0, 1] and bins.columns[0] == "1-25.75"
    labels = class_membership("multilabel", pd.DataFrame({"x": [1.0, 0.0], "y": [1.0, 1.0]}), pd.Series([0, 1]), 4)
    assert labels.sum().tolist() == [1, 2]


def test_balance_shares_sum_per_fold():
    members = class_membership("binary", pd.DataFrame({"t": [0, 1, 1, 0, 0, 1.0]}), pd.Series([0] * 6), 5)
    rows = balance_rows(members, np.array([0, 0, 0, 1, 1, 1]))
    assert {(r["fold"], r["class"]): r["count"] for r in rows} == {
        ("fold_0", "t=0"): 1, ("fold_0", "t=1"): 2, ("fold_1", "t=0"): 2, ("fold_1", "t=1"): 1}
    assert sum(r["share"] for r in rows if r["fold"] == "fold_0") == pytest.approx(1.0, abs=1e-5)


def test_display_and_grid_geometry():
    grey = to_display_bytes(np.random.default_rng(0).normal(size=(8, 6, 4)).astype(np.float16), rgb=True)
    assert grey.shape == (8, 6, 3) and grey.dtype == np.uint8 and (grey[..., 0] == grey[..., 2]).all()
    rgb = to_display_bytes(np.random.default_rng(1).normal(size=(8, 6, 3)), rgb=True)
    assert rgb.min() == 0 and rgb.max() == 255
    grid = sample_grid([grey] * 5)  # 5 tiles -> 3 columns x 2 rows, 2 px gaps
    assert grid.size == (3 * 6 + 2 * 2, 2 * 8 + 2)
    assert grid_file(3, "a b/c?") == "03_a_b_c.png" and grid_file(0, "target=1") == "00_target=1.png"



@pytest.mark.parametrize("rgb", [False, True])
def test_display_is_not_washed_out_by_a_few_extreme_pixels(rgb):
    """eda grids and explain overlays share one scaling: a lone bright pixel (an interference line, a
    specular highlight) saturates instead of squeezing the rest of the image to black."""
    ramp = np.tile(np.linspace(0, 1, 100, dtype=np.float32), (100, 1))
    image = np.repeat(ramp[..., None], 3, axis=2)
    image[0, 0] = 1e6
    shown = to_display(image, rgb=rgb)
    assert shown.shape == (100, 100, 3) and shown.dtype == np.float32
    assert shown[50, 0].max() == 0.0 and shown[50, 50].min() > 0.45 and shown[0, 0].min() == 1.0


def test_eda_stage_writes_plot_files(tmp_path, monkeypatch):
    """generate -> preprocess -> split -> eda in-process on 40 tiny PetFinder photos (regression)."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params.update(task="petfinder", folds=[0, 1], n_splits=2, img_size=16)
    params["eda"] = {"max_images": 25, "grid": 4, "bins": 3}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(tmp_path)
    get_task("petfinder").generate(tmp_path / "raw", 40, 10, seed=0, strength=1.0)
    preprocess.main(["--raw", "raw", "--out", "prepared"])
    split.main(["--index", "prepared/train.csv", "--out", "folds.csv"])
    eda.main(["--raw", "raw", "--prepared", "prepared", "--folds", "folds.csv", "--out", "eda"])

    folds = pd.read_csv("folds.csv")
    balance = pd.DataFrame(json.loads(Path("eda/balance.json").read_text()))
    assert len(balance) == 2 * 3  # folds x bins
    per_fold = balance.groupby("fold")["count"].sum()
    assert per_fold.to_dict() == {f"fold_{k}": int((folds["fold"] == k).sum()) for k in (0, 1)}

    sizes = pd.DataFrame(json.loads(Path("eda/sizes.json").read_text()))
    assert sizes["split"].value_counts().to_dict() == {"train": 25, "test": 10}
    photo = Image.open(next(Path("raw/test").glob("*.jpg")))
    assert (photo.height, photo.width, 3) in set(zip(sizes["height"], sizes["width"], sizes["channels"]))

    grids = sorted(Path("eda/samples").glob("*.png"))
    non_empty = int((balance.groupby("class")["count"].sum() > 0).sum())
    assert len(grids) == non_empty and grids[0].name.startswith("00_")
    assert Image.open(grids[0]).size == (2 * 16 + 2, 2 * 16 + 2)  # 4 tiles of 16 px, 2 x 2
