"""Stage ``oof``: out-of-fold predictions of every trained fold model (with TTA) and the CV score.

Only the folds in ``folds`` are scored: with ``folds: [0]`` of ``n_splits: 5`` the CV score is fold 0's
rows alone, and ``cv/n_folds`` says so.

params: see PARAMS below (dvc.yaml's list is generated from it)
deps:   data/prepared/, data/folds.csv, data/models/
outs:   data/oof.csv (id, fold, true_<col>..., [<prob col>...,] <pred col>...; only the trained folds'
        rows): the averaged predictions, then the task's decoded submission columns (prob cols only
        where they differ, e.g. mask)
metrics/plots: metrics/oof/ ({"cv": {<metric>: ..., "n_folds": k, <extra>: ...}, "fold_<k>": {...}}, the
        task's OOF plot (plots/custom/oof.json) and every trained fold's per-epoch curves: val_curves (the
        task metric), train_loss_curves, val_loss_curves, lr_curves)
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.atomic import write_csv
from ..core.errors import FoldwiseError, run_stage
from ..core.live import open_live
from ..engine.datasets import ShardDataset
from ..engine.inference import predict_folds
from ..engine.runtime import select_device
from ..prepared import bind_labels, load_split, meta_matrix, read_folds
from ..tasks.common.scorers import extra_scorers, score_all
from .params import TASK_GROUP, load_stage, task_for

PARAMS = ("task", "folds", "n_splits", "infer", "metrics", "train.amp", "train.channels_last", "train.num_workers",
          "train.threads", TASK_GROUP)
CHECKS = ("scorers",)


def fold_curves(models: Path, folds: list[int], metric_key: str) -> list[dict]:
    """Long-format (fold, epoch, value) rows of each fold's per-epoch validation metric."""
    rows = []
    for k in folds:
        path = models / f"fold_{k}" / "history.csv"
        if not path.is_file():
            raise FoldwiseError(f"{path}: missing; run train@{k}")
        history = pd.read_csv(path)
        rows += [{"fold": f"fold_{k}", "epoch": int(e), "value": float(v)}
                 for e, v in zip(history["epoch"], history[metric_key])]
    return rows


def coverage(folds: list[int], n_splits: int, n_scored: int, n_rows: int) -> str:
    """What the CV score covers, e.g. ``over folds [0] (300 of 1500 rows; folds 1, 2, 3, 4 not trained)``."""
    untrained = [k for k in range(n_splits) if k not in folds]
    text = f"over folds {sorted(folds)} ({n_scored} of {n_rows} rows"
    if untrained:
        text += f"; fold{'s' if len(untrained) > 1 else ''} {', '.join(map(str, untrained))} not trained"
    return text + ")"


def curve_files(metric_name: str) -> dict[str, str]:
    """Plot file name under plots/custom/ -> the history column it holds (every fold, every epoch)."""
    return {"val_curves": f"val/{metric_name}", "train_loss_curves": "train/loss",
            "val_loss_curves": "val/loss", "lr_curves": "lr"}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--prepared", type=Path, required=True)
    parser.add_argument("--folds", type=Path, required=True)
    parser.add_argument("--models", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--live", type=Path, required=True)
    args = parser.parse_args(argv)
    p = load_stage("oof", PARAMS, CHECKS)
    task = bind_labels(task_for(p), args.prepared)
    index, reader = load_split(args.prepared, "train")
    fold_of = read_folds(args.folds, index, p.n_splits)
    scored = np.flatnonzero(np.isin(fold_of, p.folds))  # rows of the trained folds, in index order
    targets = index[task.target_columns].to_numpy(dtype=np.float64)[scored]
    fold_of = fold_of[scored]
    meta = meta_matrix(index)[scored]
    device = select_device()
    preds = np.zeros((len(scored), task.num_outputs))
    extras = extra_scorers(p.metrics.extra, task.target_kind(p), task.name, skip=(task.metric_name,))
    fold_scores, extra_scores = {}, {}
    for k in p.folds:
        rows = np.flatnonzero(fold_of == k)
        dataset = ShardDataset(reader, scored[rows], meta=meta[rows])
        preds[rows] = predict_folds([args.models / f"fold_{k}"], dataset, task, p, device)
        fold_scores[k] = task.metric(targets[rows], preds[rows])
        extra_scores[f"fold_{k}"] = score_all(extras, task.target_kind(p), targets[rows], preds[rows], f"fold {k}")
        print(f"oof: fold {k}: {task.metric_name} {fold_scores[k]:.5f} (tta: {', '.join(p.infer.tta)})")
    cv = task.metric(targets, preds)
    extra_scores["cv"] = score_all(extras, task.target_kind(p), targets, preds, "cv")
    print(f"oof: cv {task.metric_name} {cv:.5f} {coverage(p.folds, p.n_splits, len(scored), len(index))}"
          + "".join(f", {n} {v:.5f}" for n, v in extra_scores["cv"].items()))

    oof = pd.DataFrame({"id": index["id"].to_numpy()[scored], "fold": fold_of})
    true = task.target_labels(targets)
    for j, col in enumerate(task.target_columns):
        oof[f"true_{col}"] = true[:, j]
    if task.prob_columns != task.pred_columns:
        for j, col in enumerate(task.prob_columns):
            oof[col] = preds[:, j]
    decoded = task.decode(preds)
    for j, col in enumerate(task.pred_columns):
        oof[col] = decoded[:, j]
    write_csv(oof, args.out)

    with open_live(args.live) as live:
        live.log_metric(f"cv/{task.metric_name}", cv, plot=False)
        live.log_metric("cv/n_folds", len(p.folds), plot=False)
        for k, score in fold_scores.items():
            live.log_metric(f"fold_{k}/{task.metric_name}", score, plot=False)
        for prefix, scores in extra_scores.items():
            for name, value in scores.items():
                live.log_metric(f"{prefix}/{name}", value, plot=False)
        # One long-format file per training curve, drawn by dvc.yaml's top-level plots as one chart
        # each with every fold overlaid (dvclive's per-fold files would give one chart per fold).
        for name, key in curve_files(task.metric_name).items():
            live.log_plot(name, fold_curves(args.models, p.folds, key), x="epoch", y="value",
                          template="linear", title=f"{key} per epoch, one line per fold",
                          y_label=key, x_label="epoch")
        live.log_plot("oof", task.oof_plot(targets, preds), x="x", y="y", template="linear",
                      title=f"Out-of-fold predictions ({task.name})")


if __name__ == "__main__":
    run_stage("oof", main)
