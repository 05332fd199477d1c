"""`n_splits` decides the split, `folds` which folds train: the split, oof and infer stages in-process on a
tiny prepared set with fake fold models (fold k's model predicts the constant PRED[k] for every image)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from conftest import ROOT
from foldwise.core.errors import FoldwiseError, run_stage
from foldwise.engine.inference import MODEL_FILE, save_fold_model
from foldwise.engine.models import create_model
from foldwise.prepared.shards import write_shards
from foldwise.stages import download, infer, oof, preprocess, split, submit, train
from foldwise.stages.split import assign_folds

N_TRAIN, N_TEST, SIDE = 60, 8, 16
PRED = [0.1, 0.3, 0.5, 0.7, 0.9]  # fold k's model outputs PRED[k]
MODEL = "test_resnet"  # timm's tiny test network


def write_params(repo: Path, **overrides) -> None:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params.update({"task": "seti", "model": MODEL, "img_size": SIDE, "infer": {"tta": ["none"], "batch_size": 16}},
                  **overrides)
    params["train"]["channels_last"] = False
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def constant_model(value: float):
    """A fold model whose head ignores the image: sigmoid(bias) = ``value`` for every input."""
    model = create_model(MODEL, in_chans=1, num_outputs=1)
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.fill_(float(np.log(value / (1 - value))))
    return model


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    """data/prepared (SETI layout, 60 train / 8 test 16x16 images) and 5 constant fold models."""
    root = tmp_path_factory.mktemp("folds")
    prepared = root / "data/prepared"
    prepared.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name, n in (("train", N_TRAIN), ("test", N_TEST)):
        write_shards(prepared, name, (rng.normal(size=(SIDE, SIDE, 1)).astype(np.float32) for _ in range(n)), n)
    target = np.arange(N_TRAIN) % 2
    pd.DataFrame({"id": [f"t{i:03d}" for i in range(N_TRAIN)], "target": target, "stratify": target}).to_csv(
        prepared / "train.csv", index=False)
    pd.DataFrame({"id": [f"s{i:03d}" for i in range(N_TEST)]}).to_csv(prepared / "test.csv", index=False)
    for k, value in enumerate(PRED):
        fold_dir = root / f"data/models/fold_{k}"
        fold_dir.mkdir(parents=True)
        config = {"model": MODEL, "in_chans": 1, "num_outputs": 1, "n_meta": 0}
        save_fold_model(fold_dir / MODEL_FILE, constant_model(value), config)
        pd.DataFrame({"epoch": [1, 2], "train/loss": [0.7, 0.6], "val/loss": [0.69, 0.65],
                      "val/auc": [0.5, 0.6 + k / 100], "lr": [1e-3, 1e-4]}).to_csv(fold_dir / "history.csv", index=False)
    return root


SPLIT = ["--index", "data/prepared/train.csv", "--out", "data/folds.csv"]
OOF = ["--prepared", "data/prepared", "--folds", "data/folds.csv", "--models", "data/models",
       "--out", "data/oof.csv", "--live", "metrics/oof"]
INFER = ["--prepared", "data/prepared", "--models", "data/models", "--out", "data/test_preds.csv"]


@pytest.mark.parametrize("n_splits", [2, 3, 5])
def test_split_uses_n_splits_and_ignores_folds(repo, monkeypatch, n_splits):
    monkeypatch.chdir(repo)
    outputs = []
    for folds in ([0], list(range(n_splits))):
        write_params(repo, n_splits=n_splits, folds=folds)
        split.main(SPLIT)
        outputs.append((repo / "data/folds.csv").read_bytes())
    assert outputs[0] == outputs[1]  # which folds train never changes the split
    folds = pd.read_csv(repo / "data/folds.csv")
    assert sorted(folds["fold"].unique()) == list(range(n_splits))
    sizes = folds["fold"].value_counts()
    assert sizes.max() - sizes.min() <= 1  # 60 rows, stratified: balanced folds
    index = pd.read_csv(repo / "data/prepared/train.csv")
    assert (index.groupby(folds["fold"])["stratify"].nunique() == 2).all()


def test_assign_folds_is_seeded_and_k_way():
    index = pd.DataFrame({"stratify": np.arange(40) % 2})
    a, b = assign_folds(index, 4, seed=1), assign_folds(index, 4, seed=1)
    assert np.array_equal(a, b) and sorted(set(a)) == [0, 1, 2, 3]
    assert not np.array_equal(a, assign_folds(index, 4, seed=2))
    assert np.bincount(assign_folds(index, 5, seed=1)).tolist() == [8] * 5


@pytest.mark.parametrize("n_splits", [2, 3, 4, 5])
def test_one_fold_of_the_split_scores_only_its_rows(repo, monkeypatch, capsys, n_splits):
    monkeypatch.chdir(repo)
    write_params(repo, n_splits=n_splits, folds=[0])
    split.main(SPLIT)
    fold_of = pd.read_csv(repo / "data/folds.csv", dtype={"id": str})
    fold0_ids = fold_of["id"][fold_of["fold"] == 0].tolist()

    oof.main(OOF)
    table = pd.read_csv(repo / "data/oof.csv", dtype={"id": str})
    assert table["id"].tolist() == fold0_ids and set(table["fold"]) == {0}
    np.testing.assert_allclose(table["target"], PRED[0], rtol=1e-5)
    metrics = json.loads((repo / "metrics/oof/metrics.json").read_text())
    assert metrics["cv"]["n_folds"] == 1 and set(metrics) == {"cv", "fold_0"}
    assert metrics["cv"]["auc"] == pytest.approx(0.5)  # a constant predictor
    curves = json.loads((repo / "metrics/oof/plots/custom/val_curves.json").read_text())
    curves = curves["val_curves"] if isinstance(curves, dict) else curves
    assert {row["fold"] for row in curves} == {"fold_0"}
    untrained = ", ".join(str(k) for k in range(1, n_splits))
    out = capsys.readouterr().out
    assert f"over folds [0] ({len(fold0_ids)} of {N_TRAIN} rows; fold{'s' if n_splits > 2 else ''} {untrained} not trained)" in out

    infer.main(INFER)
    preds = pd.read_csv(repo / "data/test_preds.csv", dtype={"id": str})
    assert len(preds) == N_TEST
    np.testing.assert_allclose(preds["target"], PRED[0], rtol=1e-5)


def test_a_subset_of_folds_is_scored_and_averaged(repo, monkeypatch, capsys):
    monkeypatch.chdir(repo)
    write_params(repo, n_splits=5, folds=[3, 1])
    split.main(SPLIT)
    fold_of = pd.read_csv(repo / "data/folds.csv", dtype={"id": str})
    oof.main(OOF)
    table = pd.read_csv(repo / "data/oof.csv", dtype={"id": str})
    expected = fold_of[fold_of["fold"].isin([1, 3])]
    assert table["id"].tolist() == expected["id"].tolist()
    np.testing.assert_allclose(table["target"], [PRED[k] for k in table["fold"]], rtol=1e-5)
    metrics = json.loads((repo / "metrics/oof/metrics.json").read_text())
    assert metrics["cv"]["n_folds"] == 2 and set(metrics) == {"cv", "fold_1", "fold_3"}
    assert "over folds [1, 3] (24 of 60 rows; folds 0, 2, 4 not trained)" in capsys.readouterr().out
    infer.main(INFER)
    preds = pd.read_csv(repo / "data/test_preds.csv")
    np.testing.assert_allclose(preds["target"], (PRED[1] + PRED[3]) / 2, rtol=1e-5)


def test_all_folds_say_none_untrained(repo, monkeypatch, capsys):
    monkeypatch.chdir(repo)
    write_params(repo, n_splits=2, folds=[0, 1])
    split.main(SPLIT)
    oof.main(OOF)
    assert len(pd.read_csv(repo / "data/oof.csv")) == N_TRAIN
    assert f"over folds [0, 1] ({N_TRAIN} of {N_TRAIN} rows)" in capsys.readouterr().out
    assert json.loads((repo / "metrics/oof/metrics.json").read_text())["cv"]["n_folds"] == 2


def test_folds_file_of_another_n_splits_is_refused(repo, monkeypatch):
    monkeypatch.chdir(repo)
    write_params(repo, n_splits=3, folds=[0])
    split.main(SPLIT)
    write_params(repo, n_splits=4, folds=[0])
    with pytest.raises(FoldwiseError, match=r"data/folds.csv: holds 3 folds but n_splits is 4; rerun the split stage"):
        oof.main(OOF)


# ---- every stage refuses bad params before any work ----------------------------------------------
STAGES = {
    "download": (download, ["--out", "data/new_raw"], "data/new_raw"),
    "preprocess": (preprocess, ["--raw", "data/raw", "--out", "data/new_prepared"], "data/new_prepared"),
    "split": (split, ["--index", "data/prepared/train.csv", "--out", "data/new_folds.csv"], "data/new_folds.csv"),
    "train": (train, ["--fold", "0", "--prepared", "data/prepared", "--folds", "data/folds.csv", "--out",
                      "data/new_model", "--live", "metrics/new_train", "--checkpoint", "data/new_ckpt"], "data/new_model"),
    "oof": (oof, [*OOF[:6], "--out", "data/new_oof.csv", "--live", "metrics/new_oof"], "data/new_oof.csv"),
    "infer": (infer, [*INFER[:4], "--out", "data/new_preds.csv"], "data/new_preds.csv"),
    "submit": (submit, ["--raw", "data/raw", "--preds", "data/test_preds.csv",
                        "--out", "data/new_submission.csv"], "data/new_submission.csv"),
}


BAD_PARAMS = [
    ({"n_splits": 3, "folds": [0, 3]}, "'folds' must be a non-empty list of distinct folds in 0..2 (n_splits is 3), got [0, 3]"),
    ({"seed": -5}, "'seed' must be >= 0 and <= 4294967295, got -5"),
    ({"train": {"weights": "/missing/file.pth"}}, "'train.weights' must be a local weights file that exists"),
]


@pytest.mark.parametrize("name, overrides, fragment", [
    (name, overrides, fragment) for name, (module, _, _) in STAGES.items() for overrides, fragment in BAD_PARAMS
    # a missing weights file stops the stages that check it (download, pretrained, train), no other
    if "train" not in overrides or "weights" in module.CHECKS
])
def test_every_stage_refuses_bad_params_in_one_line(repo, tmp_path, monkeypatch, capsys, name, overrides, fragment):
    work = tmp_path / "work"
    (work / "data").mkdir(parents=True)
    (work / "data/prepared").symlink_to(repo / "data/prepared")
    (work / "data/models").symlink_to(repo / "data/models")
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for key, value in overrides.items():
        params[key] = {**params[key], **value} if isinstance(value, dict) else value
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    monkeypatch.chdir(work)
    module, argv, output = STAGES[name]
    with pytest.raises(SystemExit) as exit_info:
        run_stage(name, lambda: module.main(argv))
    assert exit_info.value.code == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"foldwise {name}: error: params.yaml: ") and "\n" not in err
    assert fragment in err
    assert not (work / output).exists() and not list(work.rglob("*.tmp")) and not (work / "metrics").exists()
