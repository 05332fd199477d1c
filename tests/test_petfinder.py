"""PetFinder Pawpularity task: synthetic layout, reading and bad input, loss/predict/metric, end to end."""
from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from PIL import Image

from conftest import run
from foldwise.core.errors import FoldwiseError
from foldwise.stages.params import parse_params
from foldwise.tasks import get_task
from foldwise.tasks.petfinder import (
    FLAGS, IMAGENET_MEAN, IMAGENET_STD, TASK, merge_sparse_bins, sturges_bins, synthetic_flags, synthetic_score,
)

REPO = Path(__file__).resolve().parents[1]
HEADER = ("Id,Subject Focus,Eyes,Face,Near,Action,Accessory,Group,Collage,Human,"
          "Occlusion,Info,Blur,Pawpularity")


def params(img_size: int = 32, **task_params) -> SimpleNamespace:
    """The slice of the full Params the task reads."""
    tp = {"resize": "squash", "use_meta": True, "loss": "bce", **task_params}
    return SimpleNamespace(img_size=img_size, n_splits=5, task_params=SimpleNamespace(**tp))


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("petfinder")
    TASK.generate(root, n_train=300, n_test=20, seed=7, strength=1.0)
    return root


# ---- generator ----------------------------------------------------------------------------------
def test_registered_and_params_group():
    assert get_task("petfinder") is TASK
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["task"] = "petfinder"
    p = parse_params(raw)
    assert p.task_params.resize in ("squash", "crop") and p.task_params.loss in ("bce", "mse")
    with pytest.raises(FoldwiseError, match="petfinder.loss"):
        parse_params({**raw, "petfinder": {"loss": "mae"}})


def test_layout(data):
    assert (data / "train.csv").read_text().splitlines()[0] == HEADER
    train = pd.read_csv(data / "train.csv", dtype={"Id": str})
    test = pd.read_csv(data / "test.csv", dtype={"Id": str})
    sample = pd.read_csv(data / "sample_submission.csv", dtype={"Id": str})
    assert list(test.columns) == ["Id", *FLAGS]
    assert list(sample.columns) == ["Id", "Pawpularity"]
    assert sample["Id"].tolist() == test["Id"].tolist() and len(train) == 300 and len(test) == 20
    ids = train["Id"].tolist() + test["Id"].tolist()
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids) and len(set(ids)) == len(ids)
    TASK.check_layout(data)
    sizes = set()
    for split, table in (("train", train.head(40)), ("test", test)):
        for pid in table["Id"]:
            with Image.open(data / split / f"{pid}.jpg") as img:
                assert img.format == "JPEG"
                img.load()
                sizes.add(img.size)
                assert 100 <= min(img.size) and max(img.size) <= 400
    assert len(sizes) > 20  # varied sizes and aspect ratios
    assert len({round(w / h, 1) for w, h in sizes}) > 5


def test_flags_and_target(data):
    train = pd.read_csv(data / "train.csv")
    assert set(np.unique(train[FLAGS].to_numpy())) <= {0, 1}
    assert (train.loc[train["Blur"] == 1, "Eyes"] == 0).all() and train["Blur"].sum() > 5
    y = train["Pawpularity"]
    assert pd.api.types.is_integer_dtype(y) and y.between(1, 100).all()
    assert abs(y.mean() - 38) < 3.5 and abs(y.std() - 20.6) < 2.5
    assert y.mean() > y.median()  # right-skewed


def test_target_moments_and_strength():
    rng = np.random.default_rng(0)
    flags = synthetic_flags(rng, 50_000)
    tone = rng.standard_normal(50_000)
    y = synthetic_score(np.random.default_rng(1), flags, tone, 1.0)
    assert abs(y.mean() - 38) < 0.5 and abs(y.std() - 20.6) < 0.5
    r2 = {s: np.corrcoef(tone, synthetic_score(np.random.default_rng(1), flags, tone, s))[0, 1] ** 2
          for s in (0.5, 1.0, 2.0)}
    assert r2[0.5] < r2[1.0] < r2[2.0]
    # the flags alone barely beat the mean (linear fit on all 12)
    X = np.c_[np.ones(len(y)), flags.to_numpy(float)]
    resid = y - X @ np.linalg.lstsq(X, y, rcond=None)[0]
    assert resid.std() > 0.98 * y.std()


def test_generator_is_deterministic(tmp_path):
    TASK.generate(tmp_path / "a", 12, 3, seed=1, strength=1.0)
    TASK.generate(tmp_path / "b", 12, 3, seed=1, strength=1.0)
    TASK.generate(tmp_path / "c", 12, 3, seed=2, strength=1.0)
    assert (tmp_path / "a/train.csv").read_bytes() == (tmp_path / "b/train.csv").read_bytes()
    assert (tmp_path / "a/train.csv").read_bytes() != (tmp_path / "c/train.csv").read_bytes()
    pid = pd.read_csv(tmp_path / "a/train.csv", dtype={"Id": str})["Id"].iloc[0]
    assert (tmp_path / f"a/train/{pid}.jpg").read_bytes() == (tmp_path / f"b/train/{pid}.jpg").read_bytes()


# ---- reading ------------------------------------------------------------------------------------
def test_read_tables(data):
    p = params()
    train = TASK.read_table(data, "train", p)
    raw = pd.read_csv(data / "train.csv", dtype={"Id": str})
    assert train["id"].tolist() == raw["Id"].tolist()
    assert train["Pawpularity"].dtype == float and train["Pawpularity"].tolist() == raw["Pawpularity"].astype(float).tolist()
    assert TASK.meta_columns(p) == FLAGS and all(c in train for c in FLAGS)
    assert train["stratify"].nunique() >= 6
    test = TASK.read_table(data, "test", p)
    assert test["id"].tolist() == pd.read_csv(data / "sample_submission.csv", dtype={"Id": str})["Id"].tolist()
    assert all(c in test for c in FLAGS)
    assert TASK.meta_columns(params(use_meta=False)) == []
    assert not any(c in TASK.read_table(data, "train", params(use_meta=False)) for c in FLAGS)


def test_test_order_follows_sample(data, tmp_path):
    root = tmp_path / "d"
    shutil.copytree(data, root)
    sample = pd.read_csv(root / "sample_submission.csv", dtype={"Id": str}).iloc[::-1]
    sample.to_csv(root / "sample_submission.csv", index=False)
    test = TASK.read_table(root, "test", params())
    flags = pd.read_csv(root / "test.csv", dtype={"Id": str}).set_index("Id")
    assert test["id"].tolist() == sample["Id"].tolist()
    assert test["Blur"].tolist() == flags.loc[sample["Id"], "Blur"].astype(float).tolist()


@pytest.mark.parametrize("resize", ["squash", "crop"])
def test_images_rgb_normalised(data, resize):
    p = params(img_size=40, resize=resize)
    table = TASK.read_table(data, "test", p).head(4)
    images = list(TASK.iter_images(data, table, "test", p))
    assert len(images) == 4
    for img in images:
        assert img.shape == (40, 40, 3) and img.dtype == np.float32 and np.isfinite(img).all()


def test_crop_versus_squash(tmp_path):
    # left half red, right half blue, wide: the centre crop keeps both; squash keeps both; a
    # 3:1 image whose outer thirds are green only shows green when squashed
    arr = np.zeros((50, 150, 3), np.uint8)
    arr[:, :50] = (0, 255, 0)
    arr[:, 50:100] = (255, 0, 0)
    arr[:, 100:] = (0, 255, 0)
    root = tmp_path
    (root / "train").mkdir()
    Image.fromarray(arr).save(root / "train" / "x.jpg", quality=95)
    table = pd.DataFrame({"id": ["x"]})
    crop = next(TASK.iter_images(root, table, "train", params(img_size=16, resize="crop")))
    squash = next(TASK.iter_images(root, table, "train", params(img_size=16, resize="squash")))
    rgb = lambda img: img * IMAGENET_STD + IMAGENET_MEAN  # noqa: E731
    assert rgb(crop)[:, :, 1].max() < 0.2 and rgb(crop)[:, :, 0].min() > 0.8
    assert rgb(squash)[:, 0, 1].mean() > 0.8


@pytest.mark.parametrize("mode", ["L", "CMYK", "RGBA", "P"])
def test_grayscale_cmyk_become_rgb(tmp_path, mode):
    (tmp_path / "train").mkdir()
    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (60, 90, 3), dtype=np.uint8)).convert(mode)
    fmt = "PNG" if mode in ("RGBA", "P") else "JPEG"  # a PNG behind a .jpg name is decoded by content
    img.save(tmp_path / "train" / "g.jpg", fmt)
    out = next(TASK.iter_images(tmp_path, pd.DataFrame({"id": ["g"]}), "train", params(img_size=24)))
    assert out.shape == (24, 24, 3) and out.dtype == np.float32
    if mode == "L":  # gray stays gray: three equal channels before normalisation
        rgb = out * IMAGENET_STD + IMAGENET_MEAN
        assert np.allclose(rgb[..., 0], rgb[..., 1], atol=1e-5) and np.allclose(rgb[..., 1], rgb[..., 2], atol=1e-5)


def _broken_copy(data: Path, tmp_path: Path) -> tuple[Path, str]:
    root = tmp_path / "raw"
    shutil.copytree(data, root)
    pid = pd.read_csv(root / "train.csv", dtype={"Id": str})["Id"].iloc[3]
    return root, pid


def _read_all(root: Path) -> None:
    p = params(img_size=16)
    table = TASK.read_table(root, "train", p)
    for _ in TASK.iter_images(root, table, "train", p):
        pass


@pytest.mark.parametrize("damage", ["truncated", "not_image", "missing", "empty"])
def test_bad_image_names_id_and_file(data, tmp_path, damage):
    root, pid = _broken_copy(data, tmp_path)
    path = root / "train" / f"{pid}.jpg"
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif damage == "not_image":
        path.write_text("this is not a jpeg\n")
    elif damage == "empty":
        path.write_bytes(b"")
    else:
        path.unlink()
    with pytest.raises(FoldwiseError) as exc:
        _read_all(root)
    message = str(exc.value)
    assert pid in message and str(path) in message and "\n" not in message


@pytest.mark.parametrize("value", ["0", "101", "abc", "", "-5", "nan"])
def test_bad_pawpularity_names_id_and_file(data, tmp_path, value):
    root, pid = _broken_copy(data, tmp_path)
    lines = (root / "train.csv").read_text().splitlines()
    row = next(i for i, line in enumerate(lines) if line.startswith(pid))
    lines[row] = lines[row].rsplit(",", 1)[0] + "," + value
    (root / "train.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(FoldwiseError, match="Pawpularity") as exc:
        TASK.read_table(root, "train", params())
    assert pid in str(exc.value) and "train.csv" in str(exc.value)


def test_pawpularity_bounds_are_inclusive(data, tmp_path):
    root, _ = _broken_copy(data, tmp_path)
    df = pd.read_csv(root / "train.csv", dtype={"Id": str})
    df.loc[0, "Pawpularity"], df.loc[1, "Pawpularity"] = 1, 100
    df.to_csv(root / "train.csv", index=False)
    table = TASK.read_table(root, "train", params())
    assert table["Pawpularity"].min() == 1 and table["Pawpularity"].max() == 100


def test_bad_flag_and_missing_test_row(data, tmp_path):
    root, pid = _broken_copy(data, tmp_path)
    df = pd.read_csv(root / "train.csv", dtype={"Id": str})
    df.loc[3, "Blur"] = 2
    df.to_csv(root / "train.csv", index=False)
    with pytest.raises(FoldwiseError, match=f"Blur.*{pid}"):
        TASK.read_table(root, "train", params())
    test = pd.read_csv(root / "test.csv", dtype={"Id": str})
    gone = test["Id"].iloc[2]
    test.drop(index=2).to_csv(root / "test.csv", index=False)
    with pytest.raises(FoldwiseError, match=gone):
        TASK.read_table(root, "test", params())
    assert len(TASK.read_table(root, "test", params(use_meta=False))) == len(test)  # flags not needed


def test_missing_layout_file(data, tmp_path):
    root, _ = _broken_copy(data, tmp_path)
    (root / "test.csv").unlink()
    with pytest.raises(FoldwiseError, match="test.csv"):
        TASK.check_layout(root)


# ---- stratification, loss, predict, metric -------------------------------------------------------
@pytest.mark.parametrize("n", [20, 100, 300, 1000, 2000, 9912])
def test_sturges_bin_count(n):
    values = np.random.default_rng(n).integers(1, 101, n).astype(float)
    values[:2] = [1, 100]
    bins = sturges_bins(values)
    assert len(np.unique(bins)) == math.floor(1 + math.log2(n)) == bins.max() + 1
    assert bins.min() == 0 and bins[0] == 0 and bins[1] == bins.max()
    # equal width: values are monotone in bins
    order = np.argsort(values, kind="stable")
    assert (np.diff(bins[order]) >= 0).all()


def test_sparse_bins_merge_only_when_needed():
    bins = np.array([0] * 10 + [1] * 10 + [2] * 2 + [3] * 1)
    merged = merge_sparse_bins(bins, min_count=5)
    assert np.bincount(merged)[np.bincount(merged) > 0].min() >= 5 and len(np.unique(merged)) == 2
    assert (merge_sparse_bins(bins, min_count=1) == bins).all()


def test_loss_and_predict_bce():
    p = params(loss="bce")
    logits = torch.tensor([[0.0], [2.0], [-3.0]])
    targets = torch.tensor([[50.0], [80.0], [1.0]])
    expected = torch.nn.functional.binary_cross_entropy_with_logits(logits, targets / 100)
    assert torch.allclose(TASK.loss(p)(logits, targets), expected)
    # hand-computed first element: -(0.5 log 0.5 + 0.5 log 0.5) = log 2
    assert torch.isclose(TASK.loss(p)(logits[:1], targets[:1]), torch.tensor(math.log(2)))
    pred = TASK.logits_to_probs(torch.tensor([[0.0], [2.0], [-10.0], [10.0]]), p)
    assert torch.allclose(pred, torch.tensor([[50.0], [100 / (1 + math.exp(-2))], [1.0], [100.0 / (1 + math.exp(-10))]]))


def test_loss_and_predict_mse():
    p = params(loss="mse")
    logits = torch.tensor([[0.5], [0.2]])
    targets = torch.tensor([[50.0], [40.0]])
    assert torch.isclose(TASK.loss(p)(logits, targets), torch.tensor((0.0**2 + 0.2**2) / 2))
    pred = TASK.logits_to_probs(torch.tensor([[0.5], [0.2], [-0.3], [1.7]]), p)
    assert torch.allclose(pred, torch.tensor([[50.0], [20.0], [1.0], [100.0]]))


def test_rmse_matches_sklearn():
    from sklearn.metrics import mean_squared_error

    rng = np.random.default_rng(0)
    y, pred = rng.integers(1, 101, (200, 1)).astype(float), rng.uniform(1, 100, (200, 1))
    assert TASK.metric(y, pred) == pytest.approx(math.sqrt(mean_squared_error(y, pred)), rel=1e-12)
    assert TASK.metric(y, y) == 0.0
    assert TASK.metric_name == "rmse" and not TASK.greater_is_better
    assert TASK.is_better(10.0, 12.0) and not TASK.is_better(12.0, 10.0)


def test_submission_order_and_range():
    sample = pd.DataFrame({"Id": ["b", "a", "c"], "Pawpularity": 38.0})
    preds = pd.DataFrame({"id": ["a", "b", "c"], "Pawpularity": [10.0, 20.0, 30.0]})
    sub = TASK.submission(sample, preds)
    assert list(sub.columns) == ["Id", "Pawpularity"] and sub["Id"].tolist() == ["b", "a", "c"]
    assert sub["Pawpularity"].tolist() == [20.0, 10.0, 30.0]
    for bad in (0.5, 100.5, float("nan")):
        with pytest.raises(FoldwiseError):
            TASK.submission(sample, preds.assign(Pawpularity=[10.0, bad, 30.0]))


def test_oof_scatter_plot_points():
    points = TASK.oof_plot(np.array([[10.0], [50.0]]), np.array([[12.0], [40.0]]))
    assert points == [{"x": 10.0, "y": 12.0}, {"x": 50.0, "y": 40.0}]


# ---- end to end ---------------------------------------------------------------------------------
@pytest.mark.e2e
def test_dvc_repro_end_to_end(tiny_repo):
    work = tiny_repo({"task": "petfinder", "img_size": 64, "batch_size": 16,
                      "synthetic": {"n_train": 60, "n_test": 12}})
    run(["dvc", "repro"], work)

    sample = pd.read_csv(work / "data/raw/sample_submission.csv", dtype={"Id": str})
    sub = pd.read_csv(work / "data/submission.csv", dtype={"Id": str})
    assert list(sub.columns) == ["Id", "Pawpularity"] and sub["Id"].tolist() == sample["Id"].tolist()
    assert sub["Pawpularity"].between(1, 100).all() and len(sub) == 12
    metrics = json.loads((work / "metrics/oof/metrics.json").read_text())
    assert 0 < metrics["cv"]["rmse"] < 100
    assert (work / "metrics/oof/plots/custom/oof.json").is_file()
    prepared = pd.read_csv(work / "data/prepared/train.csv", dtype={"id": str})
    assert [c for c in prepared.columns if c.startswith("meta_")] == [f"meta_{c}" for c in FLAGS]
