"""Every task and every ``images.kind`` through every stage, as a new user would run them.

Each row on tiny synthetic data: `dvc repro` (every stage, eda and explain included), a second
experiment (`dvc exp run -S lr=...`), a blend of the two (`dvc exp run -S 'blend.runs=[...]'`, which
reruns ``blend`` alone), and `foldwise export` whose predict.py, run isolated outside the
repo, reproduces data/submission.csv (numbers to 1e-5, labels exactly).

Sizes are the smallest each task's generator and 2-fold split take: HMS needs every vote class in
both folds (100 label rows), mask whole people of 7 photos with all 18 classes in each fold (140).
"""
from __future__ import annotations

import json
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import test_export
from conftest import run
from test_export import run_isolated

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

STAGES = {"download", "pretrained", "preprocess", "split", "eda", "train@0", "train@1", "oof", "explain",
          "infer", "submit", "blend"}
EXPLAINED = 2  # explain.n_worst and n_confident: overlays drawn per side


@dataclass
class Row:
    """One column of the matrix: params overrides, the template the submission follows, the metric."""

    overrides: dict
    template: str  # under data/raw: the submission's ids (and, for images, its columns) come from it
    metric: str
    greater_is_better: bool
    labels: set | None = None  # class-label submissions: every predicted label is one of these
    blocked: list[str] = field(default_factory=lambda: list(test_export.BLOCKED))


def images(kind: str, targets: list[str], metric: str, classes: list[str] | None = None) -> dict:
    group = {"kind": kind, "targets": targets, "metric": metric, "classes": classes or []}
    return {"task": "images", "synthetic": {"n_train": 80, "n_test": 10}, "images": group}


ROWS = {
    "seti": Row({"task": "seti", "synthetic": {"n_train": 60, "n_test": 10}}, "sample_submission.csv", "auc", True),
    "hms": Row({"task": "hms", "synthetic": {"n_train": 100, "n_test": 6}}, "sample_submission.csv", "kl", False,
               blocked=[m for m in test_export.BLOCKED if m != "pyarrow"]),  # predict.py reads HMS parquet
    "petfinder": Row({"task": "petfinder", "synthetic": {"n_train": 60, "n_test": 10}}, "sample_submission.csv",
                     "rmse", False),
    "mask-single": Row({"task": "mask", "mask": {"head": "single"}, "synthetic": {"n_train": 140, "n_test": 14}},
                       "eval/info.csv", "f1", True, labels=set(range(18))),
    "mask-multi": Row({"task": "mask", "mask": {"head": "multi"}, "synthetic": {"n_train": 140, "n_test": 14}},
                      "eval/info.csv", "f1", True, labels=set(range(18))),
    # no/yes as the generator writes them: DVC's rewrite of params.yaml leaves them unquoted
    "images-binary": Row(images("binary", ["filled"], "roc_auc", ["no", "yes"]), "test.csv", "roc_auc", True,
                         labels={"no", "yes"}),
    "images-multiclass": Row(images("multiclass", ["shape"], "accuracy", ["circle", "square", "triangle"]),
                             "test.csv", "accuracy", True, labels={"circle", "square", "triangle"}),
    "images-multilabel": Row(images("multilabel", ["red", "blue"], "roc_auc"), "test.csv", "roc_auc", True,
                             labels={0, 1}),
    "images-regression": Row(images("regression", ["size"], "neg_root_mean_squared_error"), "test.csv",
                             "root_mean_squared_error", False),
    # a ViT: explain's method auto picks attention rollout
    "seti-vit": Row({"task": "seti", "model": "vit_tiny_patch16_224", "synthetic": {"n_train": 60, "n_test": 10}},
                    "sample_submission.csv", "auc", True),
}


def ran_stages(stdout: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", stdout))


def read_csv(path: Path) -> pd.DataFrame:
    """A CSV with its first (id) column as text, as the submission templates hold ids."""
    first = pd.read_csv(path, nrows=0).columns[0]
    return pd.read_csv(path, dtype={first: str})


def prediction_columns(oof: pd.DataFrame) -> list[str]:
    """oof.csv's predictions as numbers (probabilities, values; not decoded class labels)."""
    return [c for c in oof.columns if c not in ("id", "fold") and not c.startswith("true_") and oof[c].dtype.kind == "f"]


def assert_same_submission(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    """Same columns and ids; float columns equal to 1e-5, labels (text, integers) exactly."""
    assert list(got.columns) == list(expected.columns)
    assert len(got) == len(expected)
    for column in expected.columns:
        if expected[column].dtype.kind == "f":
            assert np.abs(got[column].to_numpy(float) - expected[column].to_numpy(float)).max() <= 1e-5, column
        else:
            assert got[column].tolist() == expected[column].tolist(), column


def check_run(repo: Path, row: Row) -> pd.DataFrame:
    """The pipeline's files after a run: OOF rows for every prepared sample in both folds, a finite
    CV metric, eda and explain outputs, a submission in the template's id order. Returns oof.csv."""
    prepared = pd.read_csv(repo / "data/prepared/train.csv")
    oof = pd.read_csv(repo / "data/oof.csv", dtype={"id": str})
    assert len(oof) == len(prepared) and set(oof["fold"]) == {0, 1}
    assert prediction_columns(oof) and np.isfinite(oof[prediction_columns(oof)].to_numpy()).all()
    cv = json.loads((repo / "metrics/oof/metrics.json").read_text())["cv"]
    assert math.isfinite(cv[row.metric]), cv
    assert any((repo / "metrics/eda").iterdir())
    for side in ("worst", "confident"):
        assert len(list((repo / "metrics/explain" / side).glob("*.png"))) == EXPLAINED, side
    template = read_csv(repo / "data/raw" / row.template)
    submission = read_csv(repo / "data/submission.csv")
    id_column = submission.columns[0]
    assert submission[id_column].tolist() == template[id_column].tolist()
    assert submission.notna().all().all()
    if row.labels is not None:
        for column in submission.columns[1:]:
            assert set(submission[column]) <= row.labels, (column, set(submission[column]))
    return oof


def check_blend(repo: Path, row: Row, runs: list[str]) -> None:
    metrics = json.loads((repo / "metrics/blend/metrics.json").read_text())
    members = {run: scores[row.metric] for run, scores in metrics["member"].items()}
    assert set(members) == set(runs)
    assert sum(metrics["weight"].values()) == pytest.approx(1.0)
    best = max(members.values()) if row.greater_is_better else min(members.values())
    cv = metrics["cv"][row.metric]  # weights fitted on every OOF row: no worse than the best member
    assert (cv >= best - 1e-9) if row.greater_is_better else (cv <= best + 1e-9), (cv, members)
    blended = read_csv(repo / "data/blend/submission.csv")
    submission = read_csv(repo / "data/submission.csv")
    assert list(blended.columns) == list(submission.columns)
    assert blended.iloc[:, 0].tolist() == submission.iloc[:, 0].tolist() and blended.notna().all().all()


class MatrixRow:
    """One row's test; a class per row below, so that the suite's ``--dist loadscope`` (one worker
    per class) spreads the rows over the workers instead of running them all on one."""

    row: Row

    def test_every_stage_two_experiments_blend_and_export(self, tiny_repo, tmp_path, monkeypatch):
        check_row(self.row, tiny_repo, tmp_path, monkeypatch)


def check_row(row: Row, tiny_repo, tmp_path: Path, monkeypatch) -> None:
    overrides = {"img_size": 32, "explain": {"n_worst": EXPLAINED, "n_confident": EXPLAINED}, **row.overrides}
    repo = tiny_repo(overrides)

    assert ran_stages(run(["dvc", "repro"], repo).stdout) == STAGES
    base_oof = check_run(repo, row)
    if "vit" in row.overrides.get("model", ""):
        import torch

        from foldwise.engine.inference import load_fold_model
        from foldwise.explain.maps import resolve_method

        model = load_fold_model(repo / "data/models/fold_0", torch.device("cpu"), channels_last=False)
        assert resolve_method("auto", model, row.overrides["model"]) == "rollout"
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "baseline run"], repo)
    base = run(["git", "branch", "--show-current"], repo).stdout.strip()

    run(["dvc", "exp", "run", "-n", "lr3", "-S", "lr=3e-3"], repo)
    second_oof = check_run(repo, row)
    columns = prediction_columns(base_oof)
    assert not np.allclose(second_oof[columns].to_numpy(float), base_oof[columns].to_numpy(float))

    out = run(["dvc", "exp", "run", "-S", f"blend.runs=[lr3, {base}]"], repo).stdout
    assert ran_stages(out) == {"blend"}, out[-3000:]
    check_blend(repo, row, ["lr3", base])

    export = tmp_path / "export"
    run(["env", "PYTHONPATH=src", sys.executable, "-m", "foldwise.export", str(export)], repo)
    monkeypatch.setattr(test_export, "BLOCKED", row.blocked)
    work = tmp_path / "notebook"
    work.mkdir()
    result = run_isolated(export / "predict.py", ["--data", str(repo / "data/raw"), "--out", "sub.csv"], work)
    assert result.returncode == 0, result.stderr[-3000:]
    assert_same_submission(read_csv(work / "sub.csv"), read_csv(repo / "data/submission.csv"))


for _name, _row in ROWS.items():
    _cls = f"TestRow_{_name.replace('-', '_')}"
    globals()[_cls] = type(_cls, (MatrixRow,), {"row": _row})
