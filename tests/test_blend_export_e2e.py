"""End to end on a tiny SETI repo: two runs, a blend experiment that reruns only `blend`, then the
Kaggle export whose predict.py (foldwise unimportable) reproduces data/submission.csv."""
from __future__ import annotations

import json
import re
import sys

import pandas as pd
import pytest

from conftest import run
from test_export import assert_predict_py_matches

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_blend_two_experiments_then_export(tiny_repo, tmp_path):
    repo = tiny_repo()
    run(["dvc", "repro"], repo)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "baseline run"], repo)
    base = run(["git", "branch", "--show-current"], repo).stdout.strip()
    run(["dvc", "exp", "run", "-n", "lr3", "-S", "lr=3e-3"], repo)

    out = run(["dvc", "exp", "run", "-S", f"blend.runs=[lr3, {base}]"], repo).stdout
    ran = set(re.findall(r"Running stage '([^']+)'", out))
    assert ran == {"blend"}, out[-3000:]
    metrics = json.loads((repo / "metrics/blend/metrics.json").read_text())
    members = metrics["member"]
    assert set(members) == {"lr3", base}
    assert metrics["cv"]["auc"] >= max(m["auc"] for m in members.values())
    assert sum(metrics["weight"].values()) == pytest.approx(1.0)
    sample = pd.read_csv(repo / "data/raw/sample_submission.csv", dtype={"id": str})
    blended = pd.read_csv(repo / "data/blend/submission.csv", dtype={"id": str})
    assert blended["id"].tolist() == sample["id"].tolist()

    export = tmp_path / "export"
    run(["env", "PYTHONPATH=src", sys.executable, "-m", "foldwise.export", str(export)], repo)
    assert_predict_py_matches(export, repo, tmp_path / "notebook")
