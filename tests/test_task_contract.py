"""The Task interface's contract, for every registered task and every variant that changes its columns
(mask's single and multi head, each ``images.kind``).

Each case is a tiny workspace: the task's synthetic data, the real preprocess, split, oof, infer and
submit stages over random-weight fold models (no training). On it: ``logits_to_probs`` is
``prob_columns`` wide and ``decode`` is ``pred_columns`` wide; ``targets_from_labels`` undoes ``target_labels``, also
through ``oof.csv``; the submission matches the task's template; ``oof.csv`` is what the blend and
explain stages read back; the Kaggle export's ``predict.py`` reproduces ``data/submission.csv``.
A new task, or a new kind, that breaks one of these fails here before any pipeline runs.
"""
from __future__ import annotations

import contextlib
import json
import os
import runpy
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from conftest import deep_update
from test_export import assert_same_submission, read_submission
from foldwise.params import Params
from foldwise.stages.params import load_params
from foldwise.engine.inference import MODEL_FILE, save_fold_model
from foldwise.engine.models import create_model
from foldwise.export import bundle
from foldwise.prepared import bind_labels, read_index
from foldwise.stages import blend as blend_stage
from foldwise.stages import explain, infer, oof, preprocess, split, submit
from foldwise.tasks import TASKS, get_task
from foldwise.tasks.images import KINDS

ROOT = Path(__file__).resolve().parents[1]
FOLDS = [0, 1]
# test_efficientnet: timm's 0.1 M-parameter test model; the contract is about the task, not the model.
BASE = {"folds": FOLDS, "n_splits": 2, "img_size": 32, "model": "test_efficientnet", "epochs": 1,
        "infer": {"tta": ["none", "hflip"], "batch_size": 16}, "train": {"num_workers": 0, "threads": 1}}
# Rows per task: enough for 2 stratified folds with every class the metric needs in each.
SIZES = {"seti": (40, 6), "hms": (120, 6), "petfinder": (30, 6), "mask": (84, 7), "images": (40, 6)}
CASES = {
    "seti": ("seti", {}),
    "hms": ("hms", {}),
    "petfinder": ("petfinder", {}),
    "mask-single": ("mask", {"mask": {"head": "single"}}),
    "mask-multi": ("mask", {"mask": {"head": "multi"}}),
    # classes [] : read from train.csv (no, yes), recorded by preprocess
    "images-binary": ("images", {"images": {"targets": ["filled"], "kind": "binary", "classes": [],
                                            "metric": "roc_auc"}}),
    "images-multiclass": ("images", {"images": {"targets": ["shape"], "kind": "multiclass",
                                                "classes": ["circle", "square", "triangle"]}}),
    "images-multilabel": ("images", {"images": {"targets": ["red", "blue"], "kind": "multilabel", "classes": [],
                                                "metric": "f1_macro"}}),
    "images-regression": ("images", {"images": {"targets": ["size"], "kind": "regression", "classes": [],
                                                "metric": "neg_root_mean_squared_error"}}),
}


@contextlib.contextmanager
def cwd(path: Path):
    before = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


@dataclass
class Workspace:
    """A case's run: ``root`` holds params.yaml and data/ (prepared, folds, models, oof, test preds, submission)."""

    name: str
    root: Path
    raw: Path
    params: Params

    @property
    def task(self):
        """The task as the stages see it: configured from params.yaml, the recorded labels applied."""
        with cwd(self.root):
            p = load_params(check_names=False)
        return bind_labels(get_task(p.task).for_params(p), self.root / "data/prepared")


@pytest.fixture(scope="module")
def raw_data(tmp_path_factory):
    """Factory: the synthetic raw data of a task, generated once per module."""
    made: dict[str, Path] = {}

    def factory(task: str) -> Path:
        if task not in made:
            made[task] = tmp_path_factory.mktemp(f"raw_{task}")
            n_train, n_test = SIZES[task]
            get_task(task).generate(made[task], n_train, n_test, seed=0, strength=1.0)
        return made[task]
    return factory


def random_models(ws: Path, p: Params, task, in_chans: int) -> None:
    """Random-weight fold models of the run's width and the history.csv oof plots per fold."""
    torch.manual_seed(0)
    n_meta = len(task.meta_columns(p))
    for k in FOLDS:
        folder = ws / f"data/models/fold_{k}"
        folder.mkdir(parents=True)
        model = create_model(p.model, in_chans, task.num_logits(p), n_meta, img_size=p.img_size)
        save_fold_model(folder / MODEL_FILE, model, {"model": p.model, "in_chans": in_chans,
                                                     "num_outputs": task.num_logits(p), "n_meta": n_meta,
                                                     "img_size": p.img_size})
        pd.DataFrame({"epoch": [1], f"val/{task.metric_name}": [0.5], "train/loss": [1.0], "val/loss": [1.0],
                      "lr": [1e-3]}).to_csv(folder / "history.csv", index=False)


@pytest.fixture(scope="module", params=list(CASES))
def ws(request, raw_data, tmp_path_factory) -> Workspace:
    name = request.param
    task_name, overrides = CASES[name]
    raw = raw_data(task_name)
    root = tmp_path_factory.mktemp(name)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    deep_update(params, yaml.safe_load(yaml.safe_dump({"task": task_name, **BASE, **overrides})))
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    with cwd(root):
        preprocess.main(["--raw", str(raw), "--out", "data/prepared"])
        split.main(["--index", "data/prepared/train.csv", "--out", "data/folds.csv"])
        p = load_params(check_names=False)
        task = bind_labels(get_task(p.task).for_params(p), Path("data/prepared"))
        in_chans = np.load(next(Path("data/prepared").glob("train_*.npy")), mmap_mode="r").shape[-1]
        random_models(root, p, task, in_chans)
        oof.main(["--prepared", "data/prepared", "--folds", "data/folds.csv", "--models", "data/models",
                  "--out", "data/oof.csv", "--live", "metrics/oof"])
        infer.main(["--prepared", "data/prepared", "--models", "data/models", "--out", "data/test_preds.csv"])
        submit.main(["--raw", str(raw), "--preds", "data/test_preds.csv", "--prepared", "data/prepared",
                     "--out", "data/submission.csv"])
    return Workspace(name, root, raw, p)


def read_template(ws: Workspace, task) -> pd.DataFrame:
    path = ws.raw / task.sample_submission
    sample = pd.read_csv(path)
    sample[sample.columns[0]] = pd.read_csv(path, usecols=[0], dtype=str).iloc[:, 0]
    return sample


# ---- coverage: every task and variant has a case --------------------------------------------------
def test_every_registered_task_and_variant_has_a_case():
    assert {task for task, _ in CASES.values()} == set(TASKS)
    kinds = {o["images"]["kind"] for t, o in CASES.values() if t == "images"}
    heads = {o["mask"]["head"] for t, o in CASES.values() if t == "mask"}
    assert kinds == set(KINDS) and heads == {"single", "multi"}


# ---- widths ---------------------------------------------------------------------------------------
def test_predict_is_prob_columns_wide_and_decode_pred_columns_wide(ws):
    task, p = ws.task, ws.params
    logits = torch.randn(7, task.num_logits(p), generator=torch.Generator().manual_seed(0))
    probs = task.logits_to_probs(logits, p)
    assert probs.shape == (7, len(task.prob_columns)) == (7, task.num_outputs)
    assert torch.isfinite(probs).all()
    decoded = np.asarray(task.decode(probs.numpy().astype(np.float64)))
    assert decoded.shape == (7, len(task.pred_columns))
    assert len(set(task.prob_columns)) == len(task.prob_columns)
    assert not {"id", "fold"} & (set(task.prob_columns) | set(task.pred_columns))


def test_stage_outputs_have_the_declared_columns(ws):
    task = ws.task
    preds = pd.read_csv(ws.root / "data/test_preds.csv")
    assert list(preds.columns) == ["id", *task.prob_columns]
    frame = pd.read_csv(ws.root / "data/oof.csv")
    expected = ["id", "fold", *[f"true_{c}" for c in task.target_columns],
                *dict.fromkeys([*task.prob_columns, *task.pred_columns])]
    assert list(frame.columns) == expected


# ---- labels <-> targets ---------------------------------------------------------------------------
def test_target_labels_round_trip(ws):
    task = ws.task
    index = read_index(ws.root / "data/prepared", "train")
    targets = index[task.target_columns].to_numpy(np.float64)
    labels = task.target_labels(targets)
    assert np.asarray(labels).shape == targets.shape
    np.testing.assert_array_equal(task.targets_from_labels(labels), targets)


def test_oof_true_columns_read_back_as_the_targets(ws):
    """What blend and explain do: oof.csv's true_ columns, as pandas reads them, back to targets."""
    task = ws.task
    frame = pd.read_csv(ws.root / "data/oof.csv", dtype={"id": str})
    index = read_index(ws.root / "data/prepared", "train").set_index("id")
    targets = index.loc[frame["id"], task.target_columns].to_numpy(np.float64)
    back = task.targets_from_labels(frame[[f"true_{c}" for c in task.target_columns]].to_numpy())
    np.testing.assert_allclose(back, targets, rtol=1e-7)
    score = task.metric(back, frame[task.prob_columns].to_numpy(np.float64))
    assert np.isfinite(score)
    rows = explain.read_oof(ws.root / "data/oof.csv", task, read_index(ws.root / "data/prepared", "train"))
    assert np.isfinite(rows["error"]).all() and len(rows) == len(frame)


# ---- submission -----------------------------------------------------------------------------------
def test_submission_matches_the_template(ws):
    task = ws.task
    sample = read_template(ws, task)
    sub = read_submission(ws.root / "data/submission.csv")
    assert sub.columns[0] == sample.columns[0]
    assert list(sub.columns[1:]) == list(task.pred_columns)
    assert sub.iloc[:, 0].tolist() == sample.iloc[:, 0].tolist()
    assert not sub.isna().any().any()
    preds = pd.read_csv(ws.root / "data/test_preds.csv", dtype={"id": str})
    assert_same_submission(task.submission(sample, preds), sub)


# ---- blend ----------------------------------------------------------------------------------------
def test_oof_and_test_preds_blend(ws, tmp_path, monkeypatch):
    """Two runs of the case (the run, and the run with its predictions nudged toward uniform, which keeps
    probability rows summing to 1) through the blend stage."""
    task = ws.task
    files = {blend_stage.OOF: pd.read_csv(ws.root / "data/oof.csv", dtype={"id": str}),
             blend_stage.TEST_PREDS: pd.read_csv(ws.root / "data/test_preds.csv", dtype={"id": str}),
             blend_stage.LABELS: (ws.root / "data/prepared/labels.json").read_text(),
             f"{blend_stage.RAW}/{task.sample_submission}": read_template(ws, task)}
    nudged = {k: v.copy() if isinstance(v, pd.DataFrame) else v for k, v in files.items()}
    for key in (blend_stage.OOF, blend_stage.TEST_PREDS):
        cols = task.prob_columns
        nudged[key][cols] = nudged[key][cols].to_numpy(np.float64) * 0.98 + 0.02 / len(cols)
    runs = {"a": files, "b": nudged}
    monkeypatch.setattr(blend_stage, "read_run_csv", lambda run, path, repo=".": runs[run][path].copy())
    monkeypatch.setattr(blend_stage, "read_run_text", lambda run, path, repo=".": runs[run][path])
    params = yaml.safe_load((ws.root / "params.yaml").read_text())
    params["blend"] = {"runs": ["a", "b"], "method": "auto"}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(tmp_path)
    blend_stage.main(["--out", "data/blend", "--live", "metrics/blend"])
    metrics = json.loads((tmp_path / "metrics/blend/metrics.json").read_text())
    assert np.isfinite(metrics["cv"][task.metric_name]) and set(metrics["member"]) == {"a", "b"}
    blended = pd.read_csv(tmp_path / "data/blend/submission.csv")
    own = pd.read_csv(ws.root / "data/submission.csv")
    assert list(blended.columns) == list(own.columns) and len(blended) == len(own)
    blended_oof = pd.read_csv(tmp_path / "data/blend/oof.csv")
    assert list(blended_oof.columns) == list(files[blend_stage.OOF].columns)


# ---- the Kaggle export ----------------------------------------------------------------------------
@contextlib.contextmanager
def vendored(export: Path):
    """Import the export's predict.py in this process; its foldwise_kaggle package is forgotten after."""
    path = list(sys.path)
    try:
        yield runpy.run_path(str(export / "predict.py"), run_name="predict")
    finally:
        sys.path[:] = path
        for name in [n for n in sys.modules if n == "foldwise_kaggle" or n.startswith("foldwise_kaggle.")]:
            del sys.modules[name]


def test_export_predict_reproduces_the_submission(ws, tmp_path):
    export = tmp_path / "export"
    with cwd(ws.root):
        bundle.build(export, Path("data/models"), Path("params.yaml"), "someone/contract", None)
    assert json.loads((export / "labels.json").read_text()) == json.loads(
        (ws.root / "data/prepared/labels.json").read_text())
    with vendored(export) as predict:
        submission, preds = predict["predict_test"](ws.raw)
    task = ws.task
    assert list(preds.columns) == ["id", *task.prob_columns]
    submission.to_csv(tmp_path / "sub.csv", index=False, float_format="%.8g")  # as predict.py's main writes it
    assert_same_submission(read_submission(tmp_path / "sub.csv"), read_submission(ws.root / "data/submission.csv"))
