"""Stage ``blend``: a weighted blend of finished runs (experiments or git revisions).

params: see PARAMS below (dvc.yaml's list is generated from it)
deps:   its code only. Each run's data/oof.csv, data/test_preds.csv, data/prepared/labels.json and sample
        submission are read from that run's revision through dvc.api, so changing ``blend.runs`` reruns
        this stage alone.
outs:   data/blend/ (submission.csv; oof.csv: id, fold, true_<col>..., blended <pred col>...),
        empty when ``blend.runs`` is []
metrics: metrics/blend/metrics.json: cv/<metric> (weights fitted on all OOF rows), cv_honest/<metric>
        (each fold blended with weights fitted on the other folds), member/<run>/<metric>, weight/<run>;
        {} when ``blend.runs`` is []
"""
from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.atomic import atomic_dir, write_csv
from ..core.errors import FoldwiseError, run_stage
from ..core.live import open_live
from ..ensemble.runs import read_run_csv, read_run_text
from ..ensemble.weights import blend, fit_weights, held_out_blend, rank_transform
from ..prepared import LABELS_FILE
from .params import TASK_GROUP, load_stage, task_for

PARAMS = ("task", "blend", TASK_GROUP)  # images: which columns are targets and how they decode
CHECKS = ()

OOF = "data/oof.csv"
TEST_PREDS = "data/test_preds.csv"
RAW = "data/raw"  # the task's submission template lies here (sample_submission.csv; mask: eval/info.csv)
LABELS = f"data/prepared/{LABELS_FILE}"  # what the run's labels mean (images: its classes)


def blend_columns(task) -> list[str]:
    """The columns of oof.csv / test_preds.csv that are blended: what folds and TTA views average
    (the task's ``prob_columns``; the same as the submission's columns except for class-label tasks)."""
    return list(task.prob_columns)


def blend_method(method: str, task) -> str:
    """``blend.method`` resolved: ``auto`` is ``rank`` where the task's metric only sees order."""
    if method == "auto":
        return "rank" if task.rank_metric else "mean"
    if method == "rank" and not task.rank_metric:
        raise FoldwiseError(f"blend.method: rank needs a rank-based metric, and {task.name}'s "
                            f"{task.metric_name} is not; use auto or mean")
    return method


@dataclass
class Members:
    """The runs' predictions, aligned row by row on the first run's ids.

    task: the task with the runs' recorded labels in effect; reference: the first run's oof rows (id,
    fold, true_<col>...); targets: its true_ columns as targets (N, T); oof: (M, N, P); test_ids: (Nt,);
    test: (M, Nt, P).
    """

    names: list[str]
    task: object
    reference: pd.DataFrame
    targets: np.ndarray
    oof: np.ndarray
    test_ids: pd.Series
    test: np.ndarray


def _columns(df: pd.DataFrame, needed: list[str], run: str, path: str) -> None:
    missing = [c for c in needed if c not in df.columns]
    if missing:
        raise FoldwiseError(f"blend.runs: '{run}': {path} lacks column '{missing[0]}' (a run of another task?)")


def _aligned(df: pd.DataFrame, ids: pd.Series, run: str, first: str, path: str) -> pd.DataFrame:
    """``df`` reordered to ``ids``; one line naming the run when the id sets differ."""
    if df["id"].duplicated().any():
        raise FoldwiseError(f"blend.runs: '{run}': {path} has duplicate id {df['id'][df['id'].duplicated()].iloc[0]!r}")
    extra = df["id"][~df["id"].isin(ids)]
    lacking = ids[~ids.isin(df["id"])]
    if len(extra) or len(lacking):
        example = f"lacks {lacking.iloc[0]!r}" if len(lacking) else f"has {extra.iloc[0]!r}"
        raise FoldwiseError(f"blend.runs: '{run}': {path} ids differ from '{first}''s ({example}); "
                            "blend runs of the same data")
    return df.set_index("id").loc[ids].reset_index()


def run_labels(run: str, repo: str = ".") -> dict:
    """The labels ``run``'s preprocess recorded (data/prepared/labels.json)."""
    text = read_run_text(run, LABELS, repo)
    try:
        labels = json.loads(text)
    except json.JSONDecodeError:
        labels = None
    if not isinstance(labels, dict):
        raise FoldwiseError(f"blend.runs: '{run}': {LABELS} is not a JSON object; rerun its preprocess stage")
    return labels


def load_members(runs: list[str], task, repo: str = ".") -> Members:
    """Read and align every run's OOF and test predictions; checks same labels, ids, folds and targets."""
    if len(set(runs)) != len(runs):
        raise FoldwiseError(f"blend.runs: '{next(r for r in runs if runs.count(r) > 1)}' is listed twice")
    first = runs[0]
    labels = run_labels(first, repo)
    task = task.with_labels(labels, f"blend.runs: '{first}': {LABELS}")
    cols = blend_columns(task)
    true_cols = [f"true_{c}" for c in task.target_columns]
    reference, targets, test_ids, oof, test = None, None, None, [], []
    for run in runs:
        own = labels if run == first else run_labels(run, repo)
        if own != labels:
            raise FoldwiseError(f"blend.runs: '{run}': {LABELS} differs from '{first}''s ({own} vs {labels}); "
                                "blend runs of the same classes")
        frame = read_run_csv(run, OOF, repo)
        _columns(frame, ["id", "fold", *true_cols, *cols], run, OOF)
        preds = read_run_csv(run, TEST_PREDS, repo)
        _columns(preds, ["id", *cols], run, TEST_PREDS)
        if reference is None:
            reference, test_ids = frame[["id", "fold", *true_cols]].copy(), preds["id"]
            targets = task.targets_from_labels(reference[true_cols].to_numpy())
        frame = _aligned(frame, reference["id"], run, first, OOF)
        moved = frame["fold"].to_numpy() != reference["fold"].to_numpy()
        if moved.any():
            i = int(np.flatnonzero(moved)[0])
            raise FoldwiseError(
                f"blend.runs: '{run}': {OOF} folds differ from '{first}''s (id {frame['id'].iloc[i]!r}: fold "
                f"{frame['fold'].iloc[i]} vs {reference['fold'].iloc[i]}); blend runs with the same seed and folds")
        if not np.allclose(task.targets_from_labels(frame[true_cols].to_numpy()), targets):
            raise FoldwiseError(
                f"blend.runs: '{run}': {OOF} targets differ from '{first}''s; blend runs of the same data")
        oof.append(frame[cols].to_numpy(np.float64))
        test.append(_aligned(preds, test_ids, run, first, TEST_PREDS)[cols].to_numpy(np.float64))
    return Members(list(runs), task, reference, targets, np.stack(oof), test_ids, np.stack(test))


def metric_key(run: str) -> str:
    """A run name as one level of a metric name (``/`` nests levels, so it becomes ``_``)."""
    return run.replace("/", "_")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--live", type=Path, required=True)
    parser.add_argument("--repo", default=".", help="the DVC repository the runs belong to")
    args = parser.parse_args(argv)
    p = load_stage("blend", PARAMS, CHECKS)
    task = task_for(p)
    runs = list(p.blend.runs)
    if not runs:
        with atomic_dir(args.out), open_live(args.live):
            pass
        print("blend: blend.runs is empty; nothing to blend")
        return
    method = blend_method(p.blend.method, task)
    m = load_members(runs, task, args.repo)
    task, oof, test, y = m.task, m.oof, m.test, m.targets
    if method == "rank":
        oof = np.stack([rank_transform(x) for x in oof])
        test = np.stack([rank_transform(x) for x in test])
    folds = m.reference["fold"].to_numpy()
    members_cv = [task.metric(y, x) for x in oof]
    weights = fit_weights(oof, y, task.metric, task.greater_is_better)
    fitted = blend(oof, weights)
    cv = task.metric(y, fitted)
    held_out, _ = held_out_blend(oof, y, folds, task.metric, task.greater_is_better)
    cv_honest = task.metric(y, held_out)

    cols = blend_columns(task)
    sample = read_run_csv(runs[0], f"{RAW}/{task.sample_submission}", args.repo)
    test_preds = pd.DataFrame(blend(test, weights), columns=cols)
    test_preds.insert(0, "id", m.test_ids.to_numpy())
    submission = task.submission(sample, test_preds)
    blended_oof = m.reference.copy()
    blended_oof[cols] = fitted
    if list(task.pred_columns) != cols:  # class-label tasks: the decoded columns follow the blend
        blended_oof[list(task.pred_columns)] = task.decode(fitted)
    with atomic_dir(args.out) as tmp:
        write_csv(submission, tmp / "submission.csv")
        write_csv(blended_oof, tmp / "oof.csv")
    name = task.metric_name
    with open_live(args.live) as live:
        live.log_metric(f"cv/{name}", cv, plot=False)
        live.log_metric(f"cv_honest/{name}", cv_honest, plot=False)
        for run, score, w in zip(runs, members_cv, weights):
            live.log_metric(f"member/{metric_key(run)}/{name}", score, plot=False)
            live.log_metric(f"weight/{metric_key(run)}", float(w), plot=False)
    width = max(map(len, runs))
    print(f"blend: {len(runs)} runs, {method} averaging, {len(y)} OOF rows in {len(np.unique(folds))} folds")
    for run, score, w in zip(runs, members_cv, weights):
        print(f"blend:   {run:<{width}}  {name} {score:.5f}  weight {w:.2f}")
    print(f"blend: cv {name} {cv:.5f} (weights fitted on all OOF rows); cv_honest {name} {cv_honest:.5f} "
          "(each fold blended with weights fitted on the other folds)")
    print(f"blend: {args.out / 'submission.csv'} with {len(submission)} rows")


if __name__ == "__main__":
    run_stage("blend", main)
