"""Stages that make no tensor do not load torch, and no module grows past what a newcomer can read.

``split`` and ``submit`` run in a fresh interpreter on a tiny workspace of each task; afterwards torch
must be absent from ``sys.modules`` (it costs seconds per process, and a stage that never builds a
model has no use for it). Tasks import torch inside the methods that make tensors (their loss and
``logits_to_probs``); a module-level ``import torch`` in a task or anything ``split``/``submit``
imports fails here.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from foldwise.stages.params import parse_params, task_for
from foldwise.tasks import TASKS, get_task

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src/foldwise"
MAX_LINES = 300
SIZES = {"seti": (40, 6), "hms": (60, 4), "petfinder": (24, 6), "mask": (84, 7), "images": (40, 6)}

RUN_STAGE = """
import sys
from importlib import import_module
stage, args = sys.argv[1], sys.argv[2:]
import_module(f"foldwise.stages.{stage}").main(args)
loaded = sorted(m for m in sys.modules if m == "torch" or m.startswith("torch."))
print("TORCH_MODULES", len(loaded), loaded[:3])
"""


def run_stage(repo: Path, stage: str, *args: str) -> str:
    proc = subprocess.run([sys.executable, "-c", RUN_STAGE, stage, *args], cwd=repo, capture_output=True,
                          text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


@pytest.fixture(scope="module", params=list(TASKS))
def workspace(request, tmp_path_factory) -> Path:
    """A repo of one task: params.yaml, raw data, the prepared train index and labels, uniform test preds."""
    task_name = request.param
    repo = tmp_path_factory.mktemp(f"light_{task_name}")
    raw = repo / "data/raw"
    n_train, n_test = SIZES[task_name]
    get_task(task_name).generate(raw, n_train, n_test, seed=0, strength=1.0)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params.update({"task": task_name, "n_splits": 2, "folds": [0, 1]})
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    p = parse_params(params, check_names=False)
    task = task_for(p)
    labels = task.fit_labels(raw, p)
    task = task.with_labels(labels, "labels.json")
    prepared = repo / "data/prepared"
    prepared.mkdir(parents=True)
    (prepared / "labels.json").write_text(json.dumps(labels))
    train = task.read_table(raw, "train", p)
    train[[c for c in ("id", "stratify", "group") if c in train]].to_csv(prepared / "train.csv", index=False)
    test = task.read_table(raw, "test", p)
    preds = pd.DataFrame(np.full((len(test), task.num_outputs), 1.0 / task.num_outputs), columns=task.prob_columns)
    preds.insert(0, "id", test["id"].to_numpy())
    preds.to_csv(repo / "data/test_preds.csv", index=False)
    return repo


def test_split_runs_without_torch(workspace):
    out = run_stage(workspace, "split", "--index", "data/prepared/train.csv", "--out", "data/folds.csv")
    assert "TORCH_MODULES 0 []" in out, out
    folds = pd.read_csv(workspace / "data/folds.csv")
    assert sorted(folds["fold"].unique()) == [0, 1]


def test_submit_runs_without_torch(workspace):
    out = run_stage(workspace, "submit", "--raw", "data/raw", "--preds", "data/test_preds.csv",
                    "--prepared", "data/prepared", "--out", "data/submission.csv")
    assert "TORCH_MODULES 0 []" in out, out
    preds = pd.read_csv(workspace / "data/test_preds.csv")
    assert len(pd.read_csv(workspace / "data/submission.csv")) == len(preds)


def module_lines() -> dict[str, int]:
    return {str(path.relative_to(PACKAGE)): len(path.read_text().splitlines()) for path in PACKAGE.rglob("*.py")}


def test_no_module_is_over_300_lines():
    lines = module_lines()
    assert any(name.startswith("tasks/") for name in lines)
    too_long = {name: n for name, n in lines.items() if n > MAX_LINES}
    assert not too_long, f"split these modules (at most {MAX_LINES} lines each): {too_long}"

