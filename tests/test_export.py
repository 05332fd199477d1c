"""foldwise.export: the folder's predict.py, run by a Python that cannot import foldwise (nor OpenCV,
albumentations, scikit-learn, scipy, DVC), reproduces the pipeline's data/submission.csv."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from foldwise.core.errors import FoldwiseError
from foldwise.engine.inference import MODEL_FILE, save_fold_model
from foldwise.engine.models import create_model
from foldwise.export import bundle
from foldwise.export.__main__ import main as export_main
from foldwise.export.kaggle_submit import kaggle_submit
from foldwise.export.vendor import vendored_files
from foldwise.stages import infer, preprocess, submit
from foldwise.tasks import TASKS, get_task

ROOT = Path(__file__).resolve().parents[1]
# Everything predict.py must do without: this repo and the training-only libraries.
BLOCKED = ["foldwise", "albumentations", "cv2", "sklearn", "scipy", "dvc", "dvclive", "pyarrow"]
ISOLATED = """
import importlib.abc, importlib.machinery, runpy, sys
blocked = set(sys.argv[1].split(","))
class Refuse(importlib.abc.Loader):
    def create_module(self, spec):
        raise ModuleNotFoundError(f"blocked for this test: {spec.name}", name=spec.name)
    def exec_module(self, module):
        pass
class Blocker:  # a spec whose loading fails: importlib.util.find_spec probes (torch does) still work
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in blocked:
            return importlib.machinery.ModuleSpec(name, Refuse())
sys.meta_path.insert(0, Blocker())
script, sys.argv = sys.argv[2], sys.argv[2:]
runpy.run_path(script, run_name="__main__")
"""


def run_isolated(script: Path, args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """``python -I`` (no PYTHONPATH, no cwd on sys.path) with the BLOCKED imports failing."""
    return subprocess.run([sys.executable, "-I", "-c", ISOLATED, ",".join(BLOCKED), str(script), *args],
                          cwd=cwd, capture_output=True, text=True, timeout=600)


def tiny_seti_run(tmp_path: Path, monkeypatch) -> Path:
    """A SETI workspace: raw data, random-weight models of 2 folds, and its data/submission.csv made
    by the preprocess, infer and submit stages themselves."""
    repo = tmp_path / "repo"
    repo.mkdir()
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params.update({"folds": [0, 1], "img_size": 32, "model": "resnet10t"})
    params["infer"]["tta"] = ["none", "hflip", "vflip"]
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(repo)
    get_task("seti").generate(repo / "data/raw", n_train=4, n_test=12, seed=0, strength=1.0)
    torch.manual_seed(0)
    for k in (0, 1):
        model = create_model("resnet10t", in_chans=1, num_outputs=1)
        (repo / f"data/models/fold_{k}").mkdir(parents=True)
        save_fold_model(repo / f"data/models/fold_{k}" / MODEL_FILE, model,
                        {"model": "resnet10t", "in_chans": 1, "num_outputs": 1, "n_meta": 0})
    preprocess.main(["--raw", "data/raw", "--out", "data/prepared"])
    infer.main(["--prepared", "data/prepared", "--models", "data/models", "--out", "data/test_preds.csv"])
    submit.main(["--raw", "data/raw", "--preds", "data/test_preds.csv",
                 "--out", "data/submission.csv"])
    return repo


def read_submission(path: Path) -> pd.DataFrame:
    """A submission CSV with its first column (the ids) read verbatim as str."""
    first = pd.read_csv(path, nrows=0).columns[0]
    return pd.read_csv(path, dtype={first: str})


def assert_same_submission(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    """Same columns and ids in the same order; numbers to 1e-5, labels (class names) exactly."""
    assert list(got.columns) == list(expected.columns)
    assert got.iloc[:, 0].astype(str).tolist() == expected.iloc[:, 0].astype(str).tolist()
    for col in expected.columns[1:]:
        if pd.api.types.is_numeric_dtype(expected[col]):
            assert np.abs(got[col].to_numpy(float) - expected[col].to_numpy(float)).max() <= 1e-5, col
        else:
            assert got[col].astype(str).tolist() == expected[col].astype(str).tolist(), col


def assert_predict_py_matches(export: Path, repo: Path, work: Path) -> pd.DataFrame:
    """Run the export's predict.py isolated in ``work`` on ``repo``'s raw data; its submission must
    equal ``repo``'s data/submission.csv (``assert_same_submission``). Returns the expected one."""
    work.mkdir()
    result = run_isolated(export / "predict.py", ["--data", str(repo / "data/raw"), "--out", "sub.csv"], work)
    assert result.returncode == 0, result.stderr[-3000:]
    expected = read_submission(repo / "data/submission.csv")
    assert_same_submission(read_submission(work / "sub.csv"), expected)
    return expected


def test_predict_py_reproduces_the_submission_without_foldwise(tmp_path, monkeypatch):
    repo = tiny_seti_run(tmp_path, monkeypatch)
    out = tmp_path / "export"
    export_main([str(out), "--id", "someone/seti-test"])
    meta = json.loads((out / "dataset-metadata.json").read_text())
    assert meta["id"] == "someone/seti-test" and meta["licenses"] == [{"name": "CC0-1.0"}]
    assert (out / "models/fold_1" / MODEL_FILE).is_file() and (out / "predict.py").is_file()

    expected = assert_predict_py_matches(out, repo, tmp_path / "elsewhere")
    assert expected["target"].std() > 1e-4  # the models do tell the samples apart


def test_vendored_modules_follow_the_imports_of_predict_py(tmp_path):
    """What the export copies is read from predict.py's imports, transitively, so moving a module needs
    no list edit: imports inside functions count, every task package comes (the registry imports them
    by name), and modules predict.py never reaches stay out."""
    files = set(bundle.vendored())
    assert {f"tasks/{name}/task.py" for name in TASKS} <= files
    assert "tasks/hms/losses.py" in files  # imported inside HmsTask.loss only
    assert "core/imagenet.py" in files  # through tasks/common/imagefolder.py
    assert {"engine/inference.py", "prepared/shards.py", "tasks/common/registry.py"} <= files
    assert not any(f.startswith(("stages/", "export/", "explain/")) for f in files)
    pkg = tmp_path / "pkg"
    (pkg / "a").mkdir(parents=True)
    (pkg / "a" / "__init__.py").write_text("")
    (pkg / "a" / "b.py").write_text("def f():\n    from . import c\n")
    (pkg / "a" / "c.py").write_text("from ..d import x\n")
    (pkg / "d.py").write_text("import numpy\n")
    (pkg / "unused.py").write_text("")
    entry = tmp_path / "entry.py"
    entry.write_text("from foldwise_kaggle.a.b import f\n")
    assert vendored_files(pkg, entry) == ["a/__init__.py", "a/b.py", "a/c.py", "d.py"]


def test_the_blocker_really_blocks(tmp_path):
    script = tmp_path / "probe.py"
    script.write_text("import foldwise\n")
    result = run_isolated(script, [], tmp_path)
    assert result.returncode != 0 and "blocked for this test: foldwise" in result.stderr


def test_missing_fold_model_and_foreign_folder_are_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(FoldwiseError, match=r"data/models/fold_0/model.pt: missing; run `dvc repro`"):
        bundle.build(tmp_path / "out", Path("data/models"), Path("params.yaml"), None, None)
    for k in params["folds"]:
        (tmp_path / f"data/models/fold_{k}").mkdir(parents=True)
        torch.save({"config": {"model": "resnet18"}}, tmp_path / f"data/models/fold_{k}" / MODEL_FILE)
    with pytest.raises(FoldwiseError, match="trained as resnet18 but params.yaml says model: resnet10t"):
        bundle.build(tmp_path / "out", Path("data/models"), Path("params.yaml"), None, None)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    params["model"] = "resnet18"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(FoldwiseError, match="mine: exists and is not a foldwise export"):
        bundle.build(tmp_path / "mine", Path("data/models"), Path("params.yaml"), None, None)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_default_dataset_id_is_a_kaggle_slug(monkeypatch):
    monkeypatch.setenv("KAGGLE_USERNAME", "alice")
    slug = bundle.default_id("seti", "tf_efficientnet_b0.ns_jft_in1k")
    assert slug == "alice/foldwise-seti-tf-efficientnet-b0-ns-jft-in1k"


def test_submit_without_credentials_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    for var in ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN", "KAGGLE_CONFIG_DIR"):
        monkeypatch.delenv(var, raising=False)
    csv = tmp_path / "submission.csv"
    csv.write_text("id,target\na,0.5\n")
    with pytest.raises(FoldwiseError, match=r"^submitting needs Kaggle API credentials \(~/.kaggle/kaggle.json"):
        kaggle_submit(csv, "first try", "seti-breakthrough-listen")
    with pytest.raises(FoldwiseError, match="nope.csv: missing"):
        kaggle_submit(tmp_path / "nope.csv", "first try", "seti-breakthrough-listen")
