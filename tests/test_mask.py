"""Mask task: synthetic layout, class coding, reading and bad input, group folds, F1, multi-head, end to end."""
from __future__ import annotations

import json
import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from PIL import Image
from sklearn.metrics import f1_score

from conftest import copy_raw, run
from foldwise.core.errors import FoldwiseError
from foldwise.stages.params import parse_params
from foldwise.sources import find_root
from foldwise.stages.split import assign_folds
from foldwise.tasks import TASKS, get_task
from foldwise.tasks.mask import CLASS_COLUMNS, PHOTOS, TASK, age_group, class_code, split_code
from foldwise.tasks.mask.losses import MaskLoss, multi_head_probs

REPO = Path(__file__).resolve().parents[1]


def params(img_size: int = 32, **task_params) -> SimpleNamespace:
    """The slice of the full Params the task reads."""
    tp = {"age_bound_young": 30, "age_bound_old": 60, "head": "single", "resize": "squash", **task_params}
    return SimpleNamespace(img_size=img_size, folds=[0, 1, 2, 3, 4], task_params=SimpleNamespace(**tp),
                           train=SimpleNamespace(label_smoothing=0.0))


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("mask")
    TASK.generate(root, n_train=84, n_test=10, seed=5, strength=1.0)  # 12 people
    return root


# ---- layout and generator ------------------------------------------------------------------------
def test_registered_and_params_group():
    assert "mask" in TASKS and get_task("mask") is TASK
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    p = parse_params({**raw, "task": "mask"}, check_names=False)
    assert (p.task_params.age_bound_young, p.task_params.age_bound_old, p.task_params.head) == (30, 60, "single")
    with pytest.raises(FoldwiseError, match="mask.head"):
        parse_params({**raw, "mask": {"head": "double"}}, check_names=False)


def test_layout_and_photos(data):
    train = pd.read_csv(data / "train/train.csv", dtype={"id": str})
    assert list(train.columns) == ["id", "gender", "race", "age", "path"] and len(train) == 12
    assert (train["path"] == train["id"] + "_" + train["gender"] + "_" + train["race"] + "_"
            + train["age"].astype(str)).all()
    assert train["id"].str.fullmatch(r"\d{6}").all()
    info = pd.read_csv(data / "eval/info.csv")
    assert list(info.columns) == ["ImageID", "ans"] and len(info) == 10
    TASK.check_layout(data)
    suffixes, hidden = set(), []
    for folder in (data / "train/images").iterdir():
        if folder.name.startswith("._"):
            hidden.append(folder)
            continue
        names = [f for f in folder.iterdir() if not f.name.startswith("._")]
        hidden += [f for f in folder.iterdir() if f.name.startswith("._")]
        assert sorted(f.stem for f in names) == sorted(PHOTOS)
        suffixes |= {f.suffix for f in names}
        with Image.open(names[0]) as img:
            assert img.size == (384, 512) and img.mode == "RGB"
    assert suffixes == {".jpg", ".jpeg", ".png"} and hidden
    for image_id in info["ImageID"]:
        with Image.open(data / "eval/images" / image_id) as img:
            assert img.size == (384, 512)


def test_generator_is_deterministic(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    TASK.generate(a, n_train=84, n_test=3, seed=1, strength=1.0)
    TASK.generate(b, n_train=84, n_test=3, seed=1, strength=1.0)
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files)


# ---- class coding -------------------------------------------------------------------------------
def test_class_coding_has_18_classes():
    mask, gender, age = np.meshgrid(np.arange(3), np.arange(2), np.arange(3), indexing="ij")
    codes = class_code(mask.ravel(), gender.ravel(), age.ravel())
    assert sorted(codes.tolist()) == list(range(18))
    assert class_code(2, 1, 2) == 17 and class_code(1, 0, 1) == 7
    back = split_code(codes)
    assert all(np.array_equal(x, y.ravel()) for x, y in zip(back, (mask, gender, age)))
    assert age_group(np.array([18, 29, 30, 59, 60, 80]), 30, 60).tolist() == [0, 0, 1, 1, 2, 2]
    assert age_group(np.array([57, 58, 59]), 30, 58).tolist() == [1, 2, 2]


def test_table_ids_groups_classes(data):
    table = TASK.read_table(data, "train", params())
    train = pd.read_csv(data / "train/train.csv", dtype={"id": str})
    assert len(table) == 7 * len(train) and table["id"].is_unique
    first = train.iloc[0]
    rows = table[table["group"] == first["path"]]
    assert rows["id"].tolist() == [f"{first['path']}/{stem}" for stem in PHOTOS]
    gender = {"male": 0, "female": 1}[first["gender"]]
    grp = age_group(np.array([first["age"]]), 30, 60)[0]
    assert rows["ans"].tolist() == [class_code(m, gender, grp) for m in PHOTOS.values()]
    assert (table["stratify"] == table["ans"]).all() and table["ans"].between(0, 17).all()
    assert not table["file"].str.contains("/._").any()
    assert {Path(f).suffix for f in table["file"]} == {".jpg", ".jpeg", ".png"}
    images = list(TASK.iter_images(data, table.head(3), "train", params(img_size=24)))
    assert all(img.shape == (24, 24, 3) and img.dtype == np.float32 for img in images)


def test_age_bound_param_moves_classes(data, tmp_path):
    root = copy_raw(data, tmp_path)
    _edit_train(root, "age", "59")
    person = pd.read_csv(root / "train/train.csv", dtype=str)["path"].iloc[3]
    train = pd.read_csv(root / "train/train.csv")
    near = set(train.loc[train["age"].between(58, 59), "path"])
    base = TASK.read_table(root, "train", params()).set_index("id")["ans"]
    moved = TASK.read_table(root, "train", params(age_bound_old=58)).set_index("id")["ans"]
    changed = base.index[base != moved]
    assert person in near and {i.split("/")[0] for i in changed} == near
    assert len(changed) == 7 * len(near) and ((moved[changed] - base[changed]) == 1).all()  # age group 1 -> 2
    with pytest.raises(FoldwiseError, match="age_bound_young"):
        TASK.read_table(root, "train", params(age_bound_young=60, age_bound_old=60))


def test_eval_table_follows_info_order(data, tmp_path):
    root = copy_raw(data, tmp_path)
    info = pd.read_csv(root / "eval/info.csv").iloc[::-1]
    info.to_csv(root / "eval/info.csv", index=False)
    assert TASK.read_table(root, "test", params())["id"].tolist() == info["ImageID"].tolist()


# ---- bad input: one line naming file, column and row ------------------------------------------------
def _edit_train(root: Path, column: str, value) -> None:
    df = pd.read_csv(root / "train/train.csv", dtype=str)
    df.loc[3, column] = value
    df.to_csv(root / "train/train.csv", index=False)


@pytest.mark.parametrize("column,value,expect", [
    ("age", "abc", "age must be an integer"), ("age", "-3", "age must be an integer"),
    ("age", "45.5", "age must be an integer"), ("gender", "unknown", "gender must be one of male, female"),
    ("gender", None, "gender is empty"), ("path", "nobody_here", "has no folder"),
])
def test_bad_train_value_is_one_line(data, tmp_path, column, value, expect):
    root = copy_raw(data, tmp_path)
    _edit_train(root, column, value)
    with pytest.raises(FoldwiseError) as exc:
        TASK.read_table(root, "train", params())
    message = str(exc.value)
    assert expect in message and "train/train.csv" in message and "row 5" in message and "\n" not in message


def test_missing_column_and_missing_photo(data, tmp_path):
    root = copy_raw(data, tmp_path)
    person = pd.read_csv(root / "train/train.csv", dtype=str)["path"].iloc[2]
    next((root / "train/images" / person).glob("incorrect_mask.*")).unlink()
    (root / "train/images" / person / "._incorrect_mask.jpg").write_bytes(b"\x00\x05\x16\x07")  # junk does not count
    with pytest.raises(FoldwiseError, match=f"path '{person}' in row 4: .* has no incorrect_mask image"):
        TASK.read_table(root, "train", params())
    pd.read_csv(root / "train/train.csv").drop(columns="age").to_csv(root / "train/train.csv", index=False)
    with pytest.raises(FoldwiseError, match=r"train/train.csv: missing column\(s\) age"):
        TASK.read_table(root, "train", params())


def test_eval_image_without_file(data, tmp_path):
    root = copy_raw(data, tmp_path)
    image_id = pd.read_csv(root / "eval/info.csv")["ImageID"].iloc[1]
    (root / "eval/images" / image_id).unlink()
    with pytest.raises(FoldwiseError) as exc:
        TASK.read_table(root, "test", params())
    assert str(exc.value).startswith(f"{root / 'eval/info.csv'}: ImageID '{image_id}' in row 3 has no image file")


# ---- folds, metric, outputs ----------------------------------------------------------------------
def test_group_folds_keep_people_whole(data):
    table = TASK.read_table(data, "train", params())
    fold = assign_folds(table, 2, seed=0)  # 12 people: 2 per gender x age cell
    assert (pd.Series(fold).groupby(table["group"]).nunique() == 1).all()
    assert all(table["ans"][fold == k].nunique() == 18 for k in (0, 1))  # stratified: every class in each fold


def test_f1_is_sklearn_macro_on_decoded_classes():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 18, 200)
    probs = rng.dirichlet(np.ones(18), 200)
    probs[np.arange(200)[:120], y[:120]] += 1.0  # 120 right, the rest random
    expected = f1_score(y, probs.argmax(1), average="macro")
    assert abs(TASK.metric(y[:, None].astype(float), probs) - expected) < 1e-12
    assert TASK.decode(probs).shape == (200, 1) and TASK.decode(probs).dtype == np.int64
    points = TASK.oof_plot(y[:3, None], probs[:3])
    assert points == [{"x": int(t), "y": int(p)} for t, p in zip(y[:3], probs[:3].argmax(1))]


def test_submission_holds_info_ids_in_order_and_int_ans(tmp_path):
    sample = pd.DataFrame({"ImageID": ["b.jpg", "a.jpg", "c.jpg"], "ans": 0})
    probs = np.eye(18)[[4, 17, 0]]
    preds = pd.DataFrame(probs, columns=CLASS_COLUMNS).assign(id=["a.jpg", "b.jpg", "c.jpg"])
    sub = TASK.submission(sample, preds)
    assert sub["ImageID"].tolist() == ["b.jpg", "a.jpg", "c.jpg"] and sub["ans"].tolist() == [17, 4, 0]
    sub.to_csv(tmp_path / "s.csv", index=False)
    assert (tmp_path / "s.csv").read_text().splitlines() == ["ImageID,ans", "b.jpg,17", "a.jpg,4", "c.jpg,0"]
    with pytest.raises(FoldwiseError, match="lack column"):
        TASK.submission(sample, preds[["id", *CLASS_COLUMNS[:5]]])


def test_other_tasks_average_what_they_submit():
    for name in ("seti", "hms", "petfinder"):
        task = get_task(name)
        probs = np.random.default_rng(1).random((4, len(task.pred_columns)))
        assert task.prob_columns == task.pred_columns and task.decode(probs) is probs


# ---- heads ---------------------------------------------------------------------------------------
def test_multi_head_decodes_to_18_class_product():
    torch.manual_seed(0)
    logits = torch.randn(5, 8)
    probs = multi_head_probs(logits)
    assert probs.shape == (5, 18) and torch.allclose(probs.sum(1), torch.ones(5))
    pm, pg, pa = (torch.softmax(x, 1) for x in torch.split(logits, [3, 2, 3], dim=1))
    for c in range(18):
        m, g, a = (int(v) for v in split_code(c))
        assert torch.allclose(probs[:, c], pm[:, m] * pg[:, g] * pa[:, a])
    # the argmax class is the per-head argmaxes, coded mask * 6 + gender * 3 + age
    expected = pm.argmax(1) * 6 + pg.argmax(1) * 3 + pa.argmax(1)
    assert torch.equal(probs.argmax(1), expected)
    assert TASK.num_logits(params(head="multi")) == 8 and TASK.num_logits(params()) == 18
    assert torch.equal(TASK.logits_to_probs(logits, params(head="multi")), probs)


def test_multi_head_loss_sums_three_cross_entropies():
    torch.manual_seed(1)
    logits, classes = torch.randn(6, 8), torch.tensor([0, 5, 7, 12, 17, 9])
    loss = MaskLoss("multi")(logits, classes[:, None].float())
    ce = torch.nn.functional.cross_entropy
    parts = torch.split(logits, [3, 2, 3], dim=1)
    expected = ce(parts[0], classes // 6) + ce(parts[1], (classes // 3) % 2) + ce(parts[2], classes % 3)
    assert torch.allclose(loss, expected)
    single = torch.randn(6, 18)
    assert torch.allclose(MaskLoss("single")(single, classes[:, None].float()), ce(single, classes))


def test_find_root_with_nested_marker(tmp_path):
    (tmp_path / "input/data/train").mkdir(parents=True)
    (tmp_path / "input/data/train/train.csv").write_text("id\n")
    assert find_root(tmp_path, "train/train.csv", tmp_path) == tmp_path / "input/data"


# ---- end to end ----------------------------------------------------------------------------------
def _check_outputs(work: Path) -> None:
    oof = pd.read_csv(work / "data/oof.csv", dtype={"id": str})
    assert list(oof.columns) == ["id", "fold", "true_ans", *CLASS_COLUMNS, "ans"]
    metrics = json.loads((work / "metrics/oof/metrics.json").read_text())
    assert abs(metrics["cv"]["f1"] - f1_score(oof["true_ans"].astype(int), oof["ans"], average="macro")) < 1e-9
    people = oof["id"].str.split("/").str[0]
    assert (oof.groupby(people)["fold"].nunique() == 1).all()
    info = pd.read_csv(work / "data/raw/eval/info.csv", dtype={"ImageID": str})
    sub = pd.read_csv(work / "data/submission.csv", dtype={"ImageID": str})
    assert list(sub.columns) == ["ImageID", "ans"] and sub["ImageID"].tolist() == info["ImageID"].tolist()
    assert sub["ans"].dtype.kind == "i" and sub["ans"].between(0, 17).all()


@pytest.mark.slow
def test_dvc_exp_run_synthetic_multi_head(tiny_repo):
    work = tiny_repo({"epochs": 1, "img_size": 32, "synthetic": {"n_train": 140, "n_test": 14}})
    run(["dvc", "exp", "run", "-S", "task=mask", "-S", "mask.head=multi"], work)
    _check_outputs(work)


@pytest.mark.slow
def test_dvc_repro_real_layout_zip_through_local(tiny_repo, tmp_path):
    """A hand-arranged archive as the competition ships it: nested folder, ._* junk, mixed suffixes."""
    raw = tmp_path / "archive_src" / "input" / "data"
    TASK.generate(raw, n_train=140, n_test=14, seed=9, strength=1.0)
    (raw / "train/._train.csv").write_bytes(b"\x00\x05\x16\x07")
    (raw / "eval/._info.csv").write_bytes(b"\x00\x05\x16\x07")
    archive = tmp_path / "mask.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for f in sorted((tmp_path / "archive_src").rglob("*")):
            zf.write(f, f.relative_to(tmp_path / "archive_src"))
    work = tiny_repo({"task": "mask", "epochs": 1, "img_size": 32,
                      "data": {"source": "local", "path": str(archive)}})
    run(["dvc", "repro"], work)
    _check_outputs(work)


def test_kaggle_source_is_refused_in_one_line(tmp_path, monkeypatch):
    from foldwise.stages import download

    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw.update(task="mask", data={"source": "kaggle", "path": ""})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FoldwiseError, match="task mask is not a Kaggle competition.*data.source: local"):
        download.main(["--out", str(tmp_path / "raw")])
    assert not (tmp_path / "raw").exists()
