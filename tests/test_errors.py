"""Bad input through the real stage entry points: exit code 1, one line naming the fault, no traceback,
and no output (or half-written temporary) left behind."""
from __future__ import annotations

import errno
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from ruamel.yaml import YAML

from conftest import pipeline_env

TINY_DATA = {"synthetic": {"n_train": 40, "n_test": 6}, "folds": [0, 1], "n_splits": 2, "img_size": 32, "epochs": 1}


def stage(repo: Path, name: str, *args: str) -> subprocess.CompletedProcess:
    env = pipeline_env()
    env["PYTHONPATH"] = "src"
    return subprocess.run([sys.executable, "-m", f"foldwise.stages.{name}", *args], cwd=repo, env=env,
                          capture_output=True, text=True, timeout=300)


def set_params(repo: Path, mutate) -> None:
    """Edit ``repo``'s params.yaml through ruamel.yaml's round trip, as `dvc exp run -S` writes it."""
    yaml = YAML()
    params = yaml.load(repo / "params.yaml")
    mutate(params)
    yaml.dump(params, repo / "params.yaml")


def assert_one_line_error(result: subprocess.CompletedProcess, stage_name: str, *fragments: str) -> None:
    assert result.returncode == 1, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("foldwise ")]
    assert errors == [lines[-1]], result.stderr  # one error line, the last thing printed
    assert errors[0].startswith(f"foldwise {stage_name}: error: ")
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]


def leftovers(folder: Path) -> list[str]:
    """Temporary files or directories the atomic writers would leave if they were not atomic."""
    return [str(p) for p in folder.rglob("*.tmp")] if folder.exists() else []


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """A tiny project copy with data/raw, data/prepared and data/folds.csv already made."""
    from conftest import make_repo

    path = make_repo(tmp_path_factory.mktemp("errors") / "repo", TINY_DATA)
    for name, args in (("download", ["--out", "data/raw"]),
                       ("preprocess", ["--raw", "data/raw", "--out", "data/prepared"]),
                       ("split", ["--index", "data/prepared/train.csv", "--out", "data/folds.csv"])):
        result = stage(path, name, *args)
        assert result.returncode == 0, result.stderr
    return path


@pytest.fixture
def fresh(repo, tmp_path):
    """A throwaway copy of ``repo`` (params and data) for one bad input."""
    dest = tmp_path / "copy"
    subprocess.run(["cp", "-r", str(repo), str(dest)], check=True)
    return dest


@pytest.mark.parametrize("mutate, fragments", [
    (lambda p: p.update(lrr=0.1), ["unknown key 'lrr'"]),
    (lambda p: p["train"].update(schedular="cosine"), ["unknown key 'train.schedular'", "did you mean 'train.scheduler'"]),
    (lambda p: p.update(lr="abc"), ["'lr' must be a number, got 'abc'"]),
    (lambda p: p.update(folds=[0, 2]), ["'folds' must be a non-empty list of distinct folds in 0..1 (n_splits is 2), got [0, 2]"]),
    (lambda p: p.update(seed=-5), ["'seed' must be >= 0 and <= 4294967295, got -5"]),
    (lambda p: p["train"].update(weights="/missing/file"), ["'train.weights' must be a local weights file that exists", "/missing/file"]),
    (lambda p: p.update(task="cifar"), ["'task' must be one of"]),
    (lambda p: p.update(model="resnet_nope"), ["'model' must be a timm model name"]),
    (lambda p: p["data"].update(source="local", path="/nonexistent/seti.zip"), ["data.path: /nonexistent/seti.zip does not exist"]),
    (lambda p: p.update(lr=float("nan")), ["params.yaml: 'lr' must be a finite number, got nan"]),
    (lambda p: p.update(lr=float("inf")), ["params.yaml: 'lr' must be a finite number, got inf"]),
    (lambda p: p.update(lr="nan"), ["params.yaml: 'lr' must be a number, got 'nan'"]),
    (lambda p: p["synthetic"].update(strength=float("nan")), ["'synthetic.strength' must be a finite number, got nan"]),
    (lambda p: p.clear(), ["params.yaml: is empty"]),
])
def test_bad_params_stop_download_and_write_nothing(fresh, mutate, fragments):
    set_params(fresh, mutate)
    result = stage(fresh, "download", "--out", "data/raw_new")
    assert_one_line_error(result, "download", *fragments)
    assert not (fresh / "data/raw_new").exists() and not leftovers(fresh / "data")


def test_zip_that_is_not_the_competitions(fresh, tmp_path):
    archive = tmp_path / "other.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("train.csv", "Id,Pawpularity\nabc,3\n")
    set_params(fresh, lambda p: p["data"].update(source="local", path=str(archive)))
    result = stage(fresh, "download", "--out", "data/raw_new")
    assert_one_line_error(result, "download", f"{archive}: no train_labels.csv found", "not the competition's data")
    assert not (fresh / "data/raw_new").exists() and not leftovers(fresh / "data")


def test_not_a_zip_at_all(fresh, tmp_path):
    fake = tmp_path / "seti.zip"
    fake.write_text("hello")
    set_params(fresh, lambda p: p["data"].update(source="local", path=str(fake)))
    assert_one_line_error(stage(fresh, "download", "--out", "data/raw_new"), "download", "not a zip file")


def test_kaggle_without_credentials(fresh, tmp_path, monkeypatch):
    set_params(fresh, lambda p: p["data"].update(source="kaggle"))
    env_home = tmp_path / "home"
    env_home.mkdir()
    monkeypatch.setenv("HOME", str(env_home))
    for var in ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN", "KAGGLE_CONFIG_DIR"):
        monkeypatch.delenv(var, raising=False)
    result = stage(fresh, "download", "--out", "data/raw_new")
    assert_one_line_error(result, "download", "needs Kaggle API credentials")
    assert not (fresh / "data/raw_new").exists()


def first_train_file(repo: Path) -> Path:
    cid = pd.read_csv(repo / "data/raw/train_labels.csv", dtype={"id": str})["id"][0]
    return repo / "data/raw/train" / cid[0] / f"{cid}.npy"


@pytest.mark.parametrize("corrupt, fragments", [
    (lambda f: f.write_bytes(b"not a numpy file"), ["not a readable .npy file"]),
    (lambda f: f.write_bytes(f.read_bytes()[:1000]), ["not a readable .npy file"]),
    (lambda f: np.save(f, np.zeros((6, 273, 200), np.float16)), ["expected float16 array of shape (6, 273, 256)", "(6, 273, 200)"]),
    (lambda f: np.save(f, np.zeros((6, 273, 256), np.int32)), ["expected float16 array", "int32"]),
    (lambda f: np.save(f, np.full((6, 273, 256), np.inf, np.float16)), ["contains NaN or infinite values"]),
    (lambda f: f.unlink(), ["missing"]),
])
def test_corrupt_inputs_stop_preprocess(fresh, corrupt, fragments):
    bad = first_train_file(fresh)
    corrupt(bad)
    result = stage(fresh, "preprocess", "--raw", "data/raw", "--out", "data/prepared_new")
    assert_one_line_error(result, "preprocess", bad.name, *fragments)
    assert not (fresh / "data/prepared_new").exists() and not leftovers(fresh / "data")


def test_labels_out_of_range_stop_preprocess(fresh):
    path = fresh / "data/raw/train_labels.csv"
    labels = pd.read_csv(path, dtype={"id": str})
    labels.loc[5, "target"] = 3
    labels.to_csv(path, index=False)
    result = stage(fresh, "preprocess", "--raw", "data/raw", "--out", "data/prepared_new")
    assert_one_line_error(result, "preprocess", "train_labels.csv", "target must be 0 or 1, got 3", labels["id"][5])
    assert not (fresh / "data/prepared_new").exists()


def test_missing_label_file_stops_preprocess(fresh):
    (fresh / "data/raw/train_labels.csv").unlink()
    result = stage(fresh, "preprocess", "--raw", "data/raw", "--out", "data/prepared_new")
    assert_one_line_error(result, "preprocess", "train_labels.csv: missing")


def test_fold_without_one_class_stops_split(fresh):
    index = pd.read_csv(fresh / "data/prepared/train.csv", dtype={"id": str})
    positives = index.index[index["stratify"] == 1]
    index.loc[positives[1:], ["target", "stratify"]] = 0  # one positive left: some fold gets none
    index.to_csv(fresh / "data/prepared/train.csv", index=False)
    result = stage(fresh, "split", "--index", "data/prepared/train.csv", "--out", "data/folds_new.csv")
    assert_one_line_error(result, "split", "class 1 of 'stratify' has 1 sample(s), fewer than the 2 folds")
    assert not (fresh / "data/folds_new.csv").exists()


def test_missing_test_id_stops_submit(fresh):
    sample = pd.read_csv(fresh / "data/raw/sample_submission.csv", dtype={"id": str})
    preds = pd.DataFrame({"id": sample["id"][1:], "target": 0.3})
    preds.to_csv(fresh / "data/test_preds.csv", index=False)
    result = stage(fresh, "submit", "--raw", "data/raw",
                   "--preds", "data/test_preds.csv", "--out", "data/submission.csv")
    assert_one_line_error(result, "submit", "lack 1 id(s)", sample["id"][0])
    assert not (fresh / "data/submission.csv").exists() and not leftovers(fresh / "data")


def test_nan_prediction_stops_submit(fresh):
    sample = pd.read_csv(fresh / "data/raw/sample_submission.csv", dtype={"id": str})
    pd.DataFrame({"id": sample["id"], "target": [np.nan] + [0.2] * (len(sample) - 1)}).to_csv(
        fresh / "data/test_preds.csv", index=False)
    result = stage(fresh, "submit", "--raw", "data/raw",
                   "--preds", "data/test_preds.csv", "--out", "data/submission.csv")
    assert_one_line_error(result, "submit", "NaN")
    assert not (fresh / "data/submission.csv").exists()


def test_disk_full_is_one_line_and_leaves_nothing(repo, tmp_path, monkeypatch, capsys):
    """ENOSPC while writing folds.csv: the real split entry point under run_stage, with to_csv failing."""
    from foldwise.core.errors import run_stage
    from foldwise.stages import split

    monkeypatch.chdir(repo)

    def full_disk(self, path, *args, **kwargs):
        Path(path).write_bytes(b"id,fo")  # a partial write, then the disk is full
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(pd.DataFrame, "to_csv", full_disk)
    out = tmp_path / "folds.csv"
    monkeypatch.setattr(sys, "argv", ["split", "--index", "data/prepared/train.csv", "--out", str(out)])
    with pytest.raises(SystemExit) as exit_info:
        run_stage("split", lambda: split.main(sys.argv[1:]))
    assert exit_info.value.code == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("foldwise split: error: no space left on device while writing") and "\n" not in err
    assert not out.exists() and not leftovers(tmp_path)


def test_debug_switch_shows_the_traceback(fresh):
    set_params(fresh, lambda p: p.update(lr="abc"))
    env = pipeline_env()
    env.update(PYTHONPATH="src", FOLDWISE_DEBUG="1")
    result = subprocess.run([sys.executable, "-m", "foldwise.stages.download", "--out", "data/x"], cwd=fresh,
                            env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0 and "Traceback" in result.stderr and "FoldwiseError" in result.stderr
