"""End-to-end: the real `dvc repro` and `dvc exp run` on a tiny copy of the project."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
import pytest

from conftest import run

pytestmark = pytest.mark.e2e


def exp_show(repo: Path) -> list[dict]:
    """Every experiment record (baseline and children) from `dvc exp show --json`."""
    records = []

    def walk(node):
        if isinstance(node, dict):
            if "data" in node and isinstance(node["data"], dict) and "params" in node["data"]:
                records.append(node["data"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(json.loads(run(["dvc", "exp", "show", "--json"], repo).stdout))
    return records


def stages_changed_by_editing(repo: Path, rel: str) -> set[str]:
    """Stages `dvc status` reports after appending a comment to ``rel`` (restored afterwards)."""
    path = repo / rel
    original = path.read_bytes()
    try:
        path.write_bytes(original + b"\n# edited by the test\n")
        return set(json.loads(run(["dvc", "status", "--json"], repo).stdout))
    finally:
        path.write_bytes(original)


def test_repro_then_experiment_reruns_only_training(tiny_repo):
    repo = tiny_repo()
    first = run(["dvc", "repro"], repo)
    for stage in ("download", "pretrained", "preprocess", "split", "eda", "train@0", "train@1", "oof", "explain",
                  "infer", "submit"):
        assert f"Running stage '{stage}'" in first.stdout

    sample = pd.read_csv(repo / "data/raw/sample_submission.csv", dtype={"id": str})
    sub = pd.read_csv(repo / "data/submission.csv", dtype={"id": str})
    assert list(sub.columns) == list(sample.columns)
    assert list(sub["id"]) == list(sample["id"])
    assert sub["target"].between(0, 1).all() and sub["target"].notna().all()
    oof = pd.read_csv(repo / "data/oof.csv", dtype={"id": str})
    assert len(oof) == 240 and set(oof["fold"]) == {0, 1}
    metrics = json.loads((repo / "metrics/oof/metrics.json").read_text())
    assert 0.0 <= metrics["cv"]["auc"] <= 1.0
    assert set(metrics) >= {"cv", "fold_0", "fold_1"} and metrics["cv"]["n_folds"] == 2
    fold_metrics = json.loads((repo / "metrics/train/fold_0/metrics.json").read_text())
    assert set(fold_metrics["val"]) == {"loss", "auc"} and "loss" in fold_metrics["train"]
    assert (repo / "metrics/train/fold_0/plots/metrics/val/auc.tsv").is_file()
    roc = json.loads((repo / "metrics/oof/plots/custom/oof.json").read_text())
    roc = roc["oof"] if isinstance(roc, dict) else roc
    assert roc[0] == {"x": 0.0, "y": 0.0} and roc[-1] == {"x": 1.0, "y": 1.0}
    assert (repo / "metrics/oof/plots/custom/val_curves.json").is_file()
    assert len(list((repo / "metrics/explain/worst").glob("*.png"))) == 4
    assert len(list((repo / "metrics/explain/confident").glob("*.png"))) == 4
    # One chart per training metric with both folds as lines, the task's OOF plot, and the overlays.
    shown = json.loads(run(["dvc", "plots", "show", "--json"], repo).stdout)["data"]
    charts = {name for name, items in shown.items() if items[0]["type"] == "vega"}
    assert charts == {"fold_curves", "train_loss_curves", "val_loss_curves", "lr_curves", "oof_seti",
                      "eda_balance", "eda_sizes"}
    images = [name for name, items in shown.items() if items[0]["type"] == "image"]
    assert len([n for n in images if n.startswith("metrics/explain/")]) == 8
    assert len([n for n in images if n.startswith("metrics/eda/samples/")]) == 2  # one grid per SETI class
    assert len(images) == 10
    losses = json.loads((repo / "metrics/oof/plots/custom/train_loss_curves.json").read_text())
    assert {row["fold"] for row in losses} == {"fold_0", "fold_1"}

    second = run(["dvc", "repro"], repo)
    assert "Running stage" not in second.stdout

    # Code deps: another task's package is not a dep of this pipeline; the training engine is.
    assert not stages_changed_by_editing(repo, "src/foldwise/tasks/hms/task.py")
    # (pretrained reruns in seconds and rewrites the same "none" marker)
    assert stages_changed_by_editing(repo, "src/foldwise/engine/mixing.py") == {
        "pretrained", "train@0", "train@1", "oof", "explain", "infer"}

    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "baseline"], repo)
    exp = run(["dvc", "exp", "run", "-S", "lr=1e-4"], repo)
    for stage in ("download", "pretrained", "preprocess", "split"):
        assert f"Running stage '{stage}'" not in exp.stdout
    for stage in ("train@0", "train@1", "oof", "infer", "submit"):
        assert f"Running stage '{stage}'" in exp.stdout

    records = exp_show(repo)
    lrs = [r["params"]["params.yaml"]["data"]["lr"] for r in records]
    assert 0.0001 in lrs and 0.001 in lrs
    for r in records:
        assert isinstance(r["params"]["params.yaml"]["data"]["lr"], float)
        assert "auc" in r["metrics"]["metrics/oof/metrics.json"]["data"]["cv"]
    sub_exp = pd.read_csv(repo / "data/submission.csv", dtype={"id": str})
    assert list(sub_exp["id"]) == list(sample["id"])

    # Iterate on fold 0 of the same split: split does not rerun, fold 0's model (lr=1e-4) is reused,
    # oof scores fold 0's rows only and says so.
    one = run(["dvc", "exp", "run", "-S", "folds=[0]"], repo)
    for stage in ("split", "train@0", "train@1"):
        assert f"Running stage '{stage}'" not in one.stdout
    for stage in ("oof", "infer", "submit"):
        assert f"Running stage '{stage}'" in one.stdout
    folds = pd.read_csv(repo / "data/folds.csv", dtype={"id": str})
    oof_one = pd.read_csv(repo / "data/oof.csv", dtype={"id": str})
    assert list(oof_one["id"]) == list(folds["id"][folds["fold"] == 0]) and set(oof_one["fold"]) == {0}
    assert f"over folds [0] ({len(oof_one)} of 240 rows; fold 1 not trained)" in one.stdout
    metrics = json.loads((repo / "metrics/oof/metrics.json").read_text())
    assert metrics["cv"]["n_folds"] == 1 and "fold_1" not in metrics


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_local_source_reads_a_kaggle_folder_and_zip_unchanged(tiny_repo, tmp_path):
    """A dataset in the real Kaggle layout, given as a folder or a zip, runs through unchanged."""
    donor = tiny_repo(name="donor")
    run(["dvc", "repro", "download"], donor)
    kaggle = tmp_path / "kaggle_seti"
    run(["cp", "-r", str(donor / "data/raw"), str(kaggle)], tmp_path)
    before = {p.relative_to(kaggle): digest(p) for p in kaggle.rglob("*") if p.is_file()}
    run(["sh", "-c", f"cd {kaggle} && python -m zipfile -c ../seti.zip ."], tmp_path)

    for source in (kaggle, tmp_path / "seti.zip"):
        repo = tiny_repo({"data": {"source": "local", "path": str(source)}}, name=f"local_{source.suffix or 'dir'}")
        run(["dvc", "repro", "split"], repo)
        copied = {p.relative_to(repo / "data/raw"): digest(p) for p in (repo / "data/raw").rglob("*") if p.is_file()}
        assert copied == before
        assert len(pd.read_csv(repo / "data/folds.csv")) == 240
    after = {p.relative_to(kaggle): digest(p) for p in kaggle.rglob("*") if p.is_file()}
    assert after == before  # the user's data is never modified
