"""Reproducible to the byte, and resumable after a kill -9, through the real `dvc repro`."""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import TINY, deep_update, make_repo, pipeline_env, run

pytestmark = pytest.mark.e2e

RESUME = {"epochs": 3}
COMPARED = ["data/oof.csv", "data/submission.csv", "data/test_preds.csv", "data/folds.csv",
            "metrics/oof/metrics.json", "metrics/train/fold_0/metrics.json", "metrics/train/fold_1/metrics.json"]


def tiny(overrides: dict) -> dict:
    return deep_update(deep_update({}, TINY), overrides)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """One clean, uninterrupted run of the tiny 3-epoch pipeline."""
    repo = make_repo(tmp_path_factory.mktemp("reference") / "repo", tiny(RESUME))
    run(["dvc", "repro"], repo)
    return repo


def test_two_clean_runs_are_byte_identical(reference, tmp_path):
    repo = make_repo(tmp_path / "again", tiny(RESUME))
    run(["dvc", "repro"], repo)
    for rel in COMPARED:
        assert (repo / rel).read_bytes() == (reference / rel).read_bytes(), rel


def test_killed_training_resumes_and_matches(reference, tmp_path):
    repo = make_repo(tmp_path / "killed", tiny(RESUME))
    checkpoint = repo / "data/checkpoints/fold_0/last.pt"
    proc = subprocess.Popen(["dvc", "repro"], cwd=repo, env=pipeline_env(), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 600
    while not checkpoint.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.1)
    assert checkpoint.exists(), "training never wrote its first checkpoint"
    os.killpg(proc.pid, signal.SIGKILL)  # kill -9 dvc and the training process, mid-epoch 2
    proc.wait()
    assert not (repo / "data/models/fold_0").exists()  # no half-written model

    resumed = run(["dvc", "repro"], repo)
    assert "resuming from data/checkpoints/fold_0/last.pt after epoch" in resumed.stdout
    for stage in ("download", "preprocess", "split"):
        assert f"Running stage '{stage}'" not in resumed.stdout
    assert not checkpoint.exists()  # removed once the fold finished
    for rel in COMPARED:
        assert (repo / rel).read_bytes() == (reference / rel).read_bytes(), rel


def test_changed_params_invalidate_the_checkpoint(reference, tmp_path):
    """A checkpoint written under other params is not resumed from."""
    repo = make_repo(tmp_path / "stale", tiny(RESUME))
    run(["dvc", "repro", "split"], repo)
    ckpt_dir = repo / "data/checkpoints/fold_0"
    ckpt_dir.mkdir(parents=True)
    (ckpt_dir / "last.pt").write_bytes((reference / "data/models/fold_0/model.pt").read_bytes())
    result = run(["dvc", "repro", "train@0"], repo)
    assert "from other params or data; starting over" in result.stdout + result.stderr
    assert "resuming" not in result.stdout
