"""Generic image-folder task: layout, label coding, bad CSVs, group folds, metric, submission, end to end."""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from PIL import Image
from sklearn.metrics import accuracy_score, f1_score, log_loss, roc_auc_score

from conftest import copy_raw, run
from foldwise.core.errors import FoldwiseError
from foldwise.stages.params import parse_params
from foldwise.stages.split import assign_folds
from foldwise.tasks import TASKS, get_task
from foldwise.tasks.images import TASK, ImagesParams, combination_strata, quantile_strata

REPO = Path(__file__).resolve().parents[1]
DEFAULT = ImagesParams()


def params(img_size: int = 32, n_folds: int = 3) -> SimpleNamespace:
    return SimpleNamespace(img_size=img_size, folds=list(range(n_folds)), n_splits=n_folds,
                           train=SimpleNamespace(label_smoothing=0.0, pos_weight=1.0))


def use(**changes) -> None:
    TASK.configure_group(DEFAULT.model_copy(update=changes))


@pytest.fixture(autouse=True)
def _default_config():
    """The task object is shared: every test starts from and leaves the default images group."""
    TASK.configure_group(DEFAULT)
    yield
    TASK.configure_group(DEFAULT)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("images")
    TASK.generate(root, n_train=60, n_test=12, seed=3, strength=1.0)
    return root


# ---- params and layout ---------------------------------------------------------------------------
def test_registered_and_configured_from_params():
    assert "images" in TASKS and get_task("images") is TASK
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    group = {**raw["images"], "targets": ["filled"], "kind": "binary", "classes": ["no", "yes"], "metric": "roc_auc"}
    p = parse_params({**raw, "task": "images", "images": group}, check_names=False)
    assert p.task_params.kind == "binary"
    task = TASK.for_params(p)
    assert (task.target_columns, task.pred_columns, task.prob_columns) == (["filled"], ["filled"], ["p_yes"])
    assert (task.metric_name, task.greater_is_better, task.num_logits(p)) == ("roc_auc", True, 1)
    assert TASK.prob_columns == ["p_circle", "p_square", "p_triangle"]  # the registry's object is left as it was
    with pytest.raises(FoldwiseError, match=r"^params.yaml: 'images.kind' must be one of binary, multiclass"):
        parse_params({**raw, "task": "images", "images": {"kind": "ordinal"}}, check_names=False)


@pytest.mark.parametrize("changes, key", [
    ({"targets": ["shape", "filled"]}, "images.targets"),             # multiclass takes one column
    ({"kind": "binary", "targets": ["filled"]}, "images.classes"),    # three classes for binary
    ({"classes": ["circle"]}, "images.classes"),
    ({"group": "shape"}, "images.group"),
])
def test_contradictory_group_is_one_line(changes, key):
    with pytest.raises(FoldwiseError) as err:
        use(**changes)
    assert str(err.value).startswith(f"params.yaml: '{key}' must be") and "\n" not in str(err.value)


def test_metric_names_a_fitting_scorer():
    from foldwise.stages.params import check_scorers

    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    p = parse_params({**raw, "task": "images", "images": {**raw["images"], "metric": "roc_auc"}}, check_names=False)
    with pytest.raises(FoldwiseError, match=r"'images.metric': 'roc_auc' does not apply to task images, whose "
                                            r"targets are multiclass"):
        check_scorers(p)


@pytest.mark.parametrize("kind, targets, classes, probs", [
    ("multiclass", ["shape"], ["circle", "square", "triangle"], ["p_circle", "p_square", "p_triangle"]),
    ("binary", ["filled"], ["no", "yes"], ["p_yes"]),
    ("multilabel", ["red", "blue"], [], ["p_red", "p_blue"]),
    ("regression", ["size"], [], ["size"]),
])
def test_columns_per_kind(kind, targets, classes, probs):
    use(kind=kind, targets=targets, classes=classes)
    assert TASK.prob_columns == probs and TASK.pred_columns == targets and TASK.num_logits(None) == len(probs)
    logits = torch.randn(5, len(probs))
    out = TASK.logits_to_probs(logits, params())
    assert out.shape == (5, len(probs))
    loss_targets = torch.tensor([[0.0], [1.0], [1.0], [0.0], [1.0]]).repeat(1, len(targets))
    loss = TASK.loss(params())(logits, loss_targets)
    assert loss.ndim == 0 and torch.isfinite(loss)


def test_layout_varied_sizes_and_modes(data):
    TASK.check_layout(data)
    train = pd.read_csv(data / "train.csv")
    assert list(train.columns) == ["image", "shape", "filled", "size", "red", "blue", "source"]
    assert set(train["shape"]) == {"circle", "square", "triangle"} and set(train["filled"]) == {"yes", "no"}
    modes, sizes = set(), set()
    for rel in train["image"]:
        with Image.open(data / "images" / rel) as img:
            modes.add(img.mode)
            sizes.add(img.size)
    assert len(modes) >= 4 and len(sizes) > 50
    assert list(pd.read_csv(data / "test.csv").columns) == ["image", "source"]


def test_generator_is_deterministic(tmp_path):
    TASK.generate(tmp_path / "a", 10, 2, seed=1, strength=1.0)
    TASK.generate(tmp_path / "b", 10, 2, seed=1, strength=1.0)
    assert (tmp_path / "a/train.csv").read_text() == (tmp_path / "b/train.csv").read_text()
    first = pd.read_csv(tmp_path / "a/train.csv")["image"].iloc[0]
    assert (tmp_path / "a/images" / first).read_bytes() == (tmp_path / "b/images" / first).read_bytes()


# ---- reading and label coding ------------------------------------------------------------------
def test_string_labels_become_indices_and_back(data):
    table = TASK.read_table(data, "train", params())
    train = pd.read_csv(data / "train.csv")
    assert list(table["id"]) == list(train["image"])
    assert table["shape"].tolist() == train["shape"].map({"circle": 0, "square": 1, "triangle": 2}).tolist()
    assert (table["stratify"] == table["shape"]).all() and list(table["group"]) == list(train["source"])
    back = TASK.target_labels(table[["shape"]].to_numpy())[:, 0]
    assert list(back) == list(train["shape"])
    onehot = np.eye(3)[table["shape"].astype(int)] * 0.8 + 0.2 / 3
    assert list(TASK.decode(onehot)[:, 0]) == list(train["shape"])


def test_binary_multilabel_regression_tables(data):
    use(kind="binary", targets=["filled"], classes=["no", "yes"])
    binary = TASK.read_table(data, "train", params())
    assert binary["filled"].tolist() == (pd.read_csv(data / "train.csv")["filled"] == "yes").astype(float).tolist()
    assert list(TASK.decode(np.array([[0.2], [0.7]]))[:, 0]) == ["no", "yes"]
    use(kind="multilabel", targets=["red", "blue"], classes=[])
    multi = TASK.read_table(data, "train", params())
    assert set(np.unique(multi[["red", "blue"]].to_numpy())) == {0.0, 1.0}
    assert multi["stratify"].value_counts().min() >= 3
    use(kind="regression", targets=["size"], classes=[], group="")
    reg = TASK.read_table(data, "train", params())
    assert "group" not in reg and reg["size"].between(0.15, 0.45).all() and reg["stratify"].nunique() == 10


def test_images_any_mode_become_rgb(data):
    table = TASK.read_table(data, "train", params()).head(20)
    images = list(TASK.iter_images(data, table, "train", params(img_size=24)))
    assert all(im.shape == (24, 24, 3) and im.dtype == np.float32 and np.isfinite(im).all() for im in images)
    sizes = list(TASK.raw_sizes(data, table, "train", params()))
    with Image.open(data / "images" / table["id"].iloc[0]) as img:
        assert sizes[0] == (img.height, img.width, len(img.getbands()))


def test_strata_helpers():
    assert np.bincount(quantile_strata(np.arange(100.0), 5)).tolist() == [10] * 10
    labels = np.array([[0, 0]] * 6 + [[1, 0]] * 6 + [[1, 1]] * 2)
    codes = combination_strata(labels, 3)
    assert len(set(codes[-2:])) == 1 and np.bincount(codes).min() >= 3  # the rare pair joins another stratum


# ---- bad CSVs: one line naming file, column and row ----------------------------------------------
def _edit(root: Path, name: str, edit) -> None:
    df = pd.read_csv(root / name, dtype=str)
    edited = edit(df)
    (df if edited is None else edited).to_csv(root / name, index=False)


def _error(root: Path, split: str) -> str:
    with pytest.raises(FoldwiseError) as err:
        TASK.read_table(root, split, params())
    assert "\n" not in str(err.value)
    return str(err.value)


def test_missing_column(data, tmp_path):
    root = copy_raw(data, tmp_path)
    _edit(root, "train.csv", lambda df: df.drop(columns=["source"]))
    assert _error(root, "train").startswith(f"{root / 'train.csv'}: missing column(s) source")


def test_unknown_class_in_train_and_test(data, tmp_path):
    root = copy_raw(data, tmp_path)
    _edit(root, "train.csv", lambda df: df.__setitem__("shape", df["shape"].where(df.index != 4, "hexagon")))
    message = _error(root, "train")
    assert message.startswith(f"{root / 'train.csv'}: shape must be one of circle, square, triangle, got 'hexagon' in row 6")
    _edit(root, "test.csv", lambda df: df.__setitem__("shape", [None, "circle", None, "oval"] + [None] * (len(df) - 4)))
    message = _error(root, "test")
    assert message.startswith(f"{root / 'test.csv'}: shape must be one of") and "'oval' in row 5" in message


def test_missing_image_file(data, tmp_path):
    root = copy_raw(data, tmp_path)
    victim = pd.read_csv(root / "train.csv")["image"].iloc[2]
    (root / "images" / victim).unlink()
    assert _error(root, "train") == f"{root / 'train.csv'}: image {victim!r} in row 4 has no image file ({root / 'images' / victim})"


def test_group_with_nan(data, tmp_path):
    root = copy_raw(data, tmp_path)
    _edit(root, "train.csv", lambda df: df.__setitem__("source", df["source"].where(df.index != 7, None)))
    message = _error(root, "train")
    assert message.startswith(f"{root / 'train.csv'}: source is empty") and "row 9" in message


# ---- folds, metric, submission -------------------------------------------------------------------
def test_no_group_crosses_folds(data):
    table = TASK.read_table(data, "train", params(n_folds=3))
    fold = assign_folds(table, 3, seed=0)
    assert (pd.Series(fold).groupby(table["group"]).nunique() == 1).all()
    assert len(np.unique(fold)) == 3


def test_metric_is_sklearn_on_labels_and_probabilities():
    rng = np.random.default_rng(0)
    y = np.arange(30) % 3
    probs = rng.dirichlet(np.ones(3), 30)
    labels = np.array(DEFAULT.classes)
    assert TASK.metric(y[:, None].astype(float), probs) == accuracy_score(labels[y], TASK.decode(probs)[:, 0])
    use(metric="neg_log_loss")
    assert TASK.metric_name == "log_loss" and not TASK.greater_is_better
    assert TASK.metric(y[:, None].astype(float), probs) == pytest.approx(log_loss(y, probs), abs=1e-12)


def test_submission_is_test_image_column_then_labels(tmp_path):
    template = pd.DataFrame({"source": ["s1", "s2", "s3"], "image": ["c/3.png", "a/1.jpg", "b/2.png"]})
    preds = pd.DataFrame({"id": ["a/1.jpg", "b/2.png", "c/3.png"], "p_circle": [0.1, 0.7, 0.2],
                          "p_square": [0.8, 0.2, 0.2], "p_triangle": [0.1, 0.1, 0.6]})
    sub = TASK.submission(template, preds)
    assert list(sub.columns) == ["image", "shape"]
    assert sub.to_dict("list") == {"image": ["c/3.png", "a/1.jpg", "b/2.png"], "shape": ["triangle", "square", "circle"]}


# ---- end to end ----------------------------------------------------------------------------------
def check_run(repo: Path, target: str, classes: list[str], metric: str, score) -> dict:
    """oof.csv, the CV metric against scikit-learn, folds by group, the submission's layout."""
    oof = pd.read_csv(repo / "data/oof.csv", dtype={"id": str})
    metrics = json.loads((repo / "metrics/oof/metrics.json").read_text())
    assert metrics["cv"][metric] == pytest.approx(score(oof), abs=1e-9)
    assert set(oof[target]) <= set(classes) and set(oof[f"true_{target}"]) <= set(classes)
    return metrics


@pytest.mark.slow
def test_dvc_repro_synthetic_default_with_extra_metrics(tiny_repo):
    repo = tiny_repo({"task": "images", "metrics": {"extra": ["f1_macro", "neg_log_loss"]}})
    run(["dvc", "repro"], repo)
    classes = ["circle", "square", "triangle"]
    probs = lambda o: o[[f"p_{c}" for c in classes]].to_numpy()  # noqa: E731
    metrics = check_run(repo, "shape", classes, "accuracy",
                        lambda o: accuracy_score(o["true_shape"], o["shape"]))
    oof = pd.read_csv(repo / "data/oof.csv")
    assert metrics["cv"]["f1_macro"] == pytest.approx(f1_score(oof["true_shape"], oof["shape"], average="macro"), abs=1e-9)
    # probabilities are written with 8 significant digits
    assert metrics["cv"]["log_loss"] == pytest.approx(log_loss(oof["true_shape"], probs(oof), labels=classes), abs=1e-6)
    assert set(metrics["fold_0"]) == {"accuracy", "f1_macro", "log_loss"}

    train = pd.read_csv(repo / "data/raw/train.csv").set_index("image")
    folds = oof.assign(source=train.loc[oof["id"], "source"].to_numpy())
    assert (folds.groupby("source")["fold"].nunique() == 1).all()
    test = pd.read_csv(repo / "data/raw/test.csv")
    sub = pd.read_csv(repo / "data/submission.csv")
    assert list(sub.columns) == ["image", "shape"] and list(sub["image"]) == list(test["image"])
    assert set(sub["shape"]) <= set(classes)

    balance = json.loads((repo / "metrics/eda/balance.json").read_text())
    assert sum(r["count"] for r in balance) == len(oof) and len(balance) == 2 * 3
    assert sorted(p.name for p in (repo / "metrics/eda/samples").glob("*.png")) == [
        "00_circle.png", "01_square.png", "02_triangle.png"]
    run(["dvc", "plots", "show"], repo)
    html = (repo / "dvc_plots/index.html").read_text()
    # 3 class sample grids (eda) + 4 worst and 4 most confident overlays (explain)
    assert html.count("<img") == 3 + 8 and "Class balance per fold" in html and "Raw sample sizes" in html
    assert "Out-of-fold predictions (images)" in html


@pytest.mark.slow
def test_dvc_repro_real_layout_folder_through_local(tiny_repo, tmp_path):
    """Another folder layout: labels.csv / holdout.csv / pics/, column ``file``, binary yes/no with the
    classes read from the CSV, roc_auc (the images page's second command)."""
    folder = tmp_path / "download" / "mydata"
    TASK.generate(folder, 200, 30, seed=9, strength=1.0)
    (folder / "images").rename(folder / "pics")
    train = pd.read_csv(folder / "train.csv").rename(columns={"image": "file"})
    train[["file", "filled", "source"]].to_csv(folder / "labels.csv", index=False)
    pd.read_csv(folder / "test.csv").rename(columns={"image": "file"}).to_csv(folder / "holdout.csv", index=False)
    (folder / "train.csv").unlink()
    (folder / "test.csv").unlink()
    group = {"train_csv": "labels.csv", "test_csv": "holdout.csv", "image_dir": "pics", "image_column": "file",
             "targets": ["filled"], "kind": "binary", "classes": [], "group": "source",
             "metric": "roc_auc"}
    repo = tiny_repo({"task": "images", "images": group, "data": {"source": "local", "path": str(folder.parent)}})
    run(["dvc", "repro"], repo)
    check_run(repo, "filled", ["no", "yes"], "roc_auc",
              lambda o: roc_auc_score(o["true_filled"] == "yes", o["p_yes"]))
    sub = pd.read_csv(repo / "data/submission.csv")
    assert list(sub.columns) == ["file", "filled"] and len(sub) == 30 and set(sub["filled"]) <= {"no", "yes"}
    assert json.loads((repo / "data/prepared/labels.json").read_text()) == {"classes": ["no", "yes"]}
    assert "p_yes" in pd.read_csv(repo / "data/test_preds.csv").columns


# ---- strata follow n_splits ----------------------------------------------------------------------
def split_params(folds: list[int], n_splits: int) -> SimpleNamespace:
    return SimpleNamespace(img_size=32, folds=folds, n_splits=n_splits)


def test_regression_strata_depend_on_n_splits_not_folds(data):
    use(kind="regression", targets=["size"], classes=[])
    one_fold = TASK.read_table(data, "train", split_params([0], 5))
    all_folds = TASK.read_table(data, "train", split_params([0, 1, 2, 3, 4], 5))
    assert one_fold["stratify"].tolist() == all_folds["stratify"].tolist()
    assert one_fold["stratify"].tolist() == quantile_strata(one_fold["size"].to_numpy(), 5).tolist()
    assert one_fold["stratify"].nunique() == 6  # 60 rows: 6 bins of >= 2 * 5 rows (10 bins for 2 folds)
    assert TASK.read_table(data, "train", split_params([0], 2))["stratify"].nunique() == 10


def test_multilabel_strata_depend_on_n_splits_not_folds(data, tmp_path):
    root = copy_raw(data, tmp_path)
    _edit(root, "train.csv", lambda df: df.assign(blue=["1" if i < 3 else "0" for i in range(len(df))]))
    use(kind="multilabel", targets=["red", "blue"], classes=[])
    one_fold = TASK.read_table(root, "train", split_params([0], 5))
    all_folds = TASK.read_table(root, "train", split_params([0, 1, 2, 3, 4], 5))
    assert one_fold["stratify"].tolist() == all_folds["stratify"].tolist()
    # 3 rows with blue: too few for 5 folds, so they join the largest stratum; for 2 folds they are their own
    assert one_fold["stratify"].nunique() == 2
    assert TASK.read_table(root, "train", split_params([0], 2))["stratify"].nunique() > 2


# ---- classes: [] reads them from the train CSV, recorded with the prepared data --------------------
@pytest.mark.parametrize("labels, kind, expected", [
    (["dog", "cat", "fox", "cat"], "multiclass", ["cat", "dog", "fox"]),
    (["10", "9", "2", "10"], "multiclass", ["2", "9", "10"]),  # numbers by value, as the CSV writes them
    (["yes", "no", "no"], "binary", ["no", "yes"]),  # the last is the positive class
    (["1", "0"], "binary", ["0", "1"]),
    (["B", "a", "C"], "multiclass", ["B", "C", "a"]),  # text as text
])
def test_classes_from_the_train_csv_sorted(tmp_path, labels, kind, expected):
    (tmp_path / "train.csv").write_text("image,label\n" + "".join(f"{i}.png,{v}\n" for i, v in enumerate(labels)))
    use(kind=kind, targets=["label"], classes=[], group="")
    assert TASK.fit_labels(tmp_path, params()) == {"classes": expected}
    bound = TASK.with_labels({"classes": expected}, "labels.json")
    assert bound.classes == expected and bound is not TASK
    assert bound.prob_columns == ([f"p_{expected[1]}"] if kind == "binary" else [f"p_{c}" for c in expected])


@pytest.mark.parametrize("labels, kind, message", [
    (["a", "b", "c"], "binary", "label holds 3 label(s) (a, b, c); kind binary needs 2"),
    (["a", "a"], "multiclass", "label holds 1 label(s) (a); kind multiclass needs at least 2"),
    (["cat", "Cat", "dog"], "multiclass", "label spells one label two ways ('cat', 'Cat')"),
    (["1", "1.0", "2"], "multiclass", "label spells one label two ways ('1', '1.0')"),
])
def test_classes_from_the_csv_refused_in_one_line(tmp_path, labels, kind, message):
    (tmp_path / "train.csv").write_text("image,label\n" + "".join(f"{i}.png,{v}\n" for i, v in enumerate(labels)))
    use(kind=kind, targets=["label"], classes=[], group="")
    with pytest.raises(FoldwiseError) as err:
        TASK.fit_labels(tmp_path, params())
    assert str(err.value).startswith(f"{tmp_path / 'train.csv'}: {message}") and "\n" not in str(err.value)


def test_unrecorded_classes_are_never_guessed():
    """Parsing ``classes: []`` leaves the classes unknown: columns and decoding ask for preprocess."""
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    p = parse_params({**raw, "task": "images", "images": {**raw["images"], "classes": []}}, check_names=False)
    assert p.task_params.classes == []
    task = TASK.for_params(p)
    for use_classes in (lambda: task.prob_columns, lambda: task.decode(np.ones((1, 3))),
                        lambda: task.with_labels({}, "data/prepared/labels.json")):
        with pytest.raises(FoldwiseError, match=r"classes"):
            use_classes()
    with pytest.raises(FoldwiseError, match=r"^images.classes is \[\] and no classes are recorded yet"):
        task.prob_columns  # noqa: B018


def test_recorded_classes_must_match_given_ones():
    bound = TASK.with_labels({"classes": list(DEFAULT.classes)}, "labels.json")
    assert bound is TASK  # nothing to change
    with pytest.raises(FoldwiseError, match=r"^data/prepared/labels.json: records classes \['square', 'circle', "
                                            r"'triangle'\], but images.classes is \['circle', 'square', 'triangle'\]"):
        TASK.with_labels({"classes": ["square", "circle", "triangle"]}, "data/prepared/labels.json")
    with pytest.raises(FoldwiseError, match=r"^labels.json: no valid binary classes recorded"):
        use(kind="binary", targets=["filled"], classes=[])
        TASK.with_labels({"classes": ["a", "b", "c"]}, "labels.json")


def test_labels_map_back_to_targets_however_pandas_typed_them():
    use(kind="binary", targets=["label"], classes=["0", "1"], group="")
    np.testing.assert_array_equal(TASK.targets_from_labels(np.array([[1], [0], ["1"], [1.0]], dtype=object)),
                                  [[1.0], [0.0], [1.0], [1.0]])
    with pytest.raises(FoldwiseError, match=r"^label 2 is not one of the classes 0, 1"):
        TASK.targets_from_labels(np.array([[1], [2]]))
    use(kind="regression", targets=["size"], classes=[])
    np.testing.assert_array_equal(TASK.targets_from_labels(np.array([[0.5], [1]], dtype=object)), [[0.5], [1.0]])


def test_preprocess_records_the_csv_classes_and_later_stages_use_them(data, tmp_path, monkeypatch):
    """classes: [] on binary yes/no: preprocess writes labels.json; submit decodes with it."""
    from foldwise.prepared import labels_path, read_labels
    from foldwise.stages import preprocess, submit

    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw.update({"task": "images", "img_size": 16, "n_splits": 2, "folds": [0, 1]})
    raw["images"].update({"targets": ["filled"], "kind": "binary", "classes": [], "metric": "roc_auc"})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    monkeypatch.chdir(tmp_path)
    preprocess.main(["--raw", str(data), "--out", "prepared"])
    assert read_labels(tmp_path / "prepared") == {"classes": ["no", "yes"]}
    assert json.loads(labels_path(tmp_path / "prepared").read_text()) == {"classes": ["no", "yes"]}
    index = pd.read_csv(tmp_path / "prepared/train.csv")
    assert index["filled"].tolist() == (pd.read_csv(data / "train.csv")["filled"] == "yes").astype(float).tolist()
    test = pd.read_csv(data / "test.csv")
    pd.DataFrame({"id": test["image"], "p_yes": np.linspace(0, 1, len(test))}).to_csv("preds.csv", index=False)
    submit.main(["--raw", str(data), "--preds", "preds.csv", "--prepared", "prepared", "--out", "sub.csv"])
    sub = pd.read_csv("sub.csv")
    assert list(sub.columns) == ["image", "filled"]
    assert sub["filled"].tolist() == ["yes" if v >= 0.5 else "no" for v in np.linspace(0, 1, len(test))]
