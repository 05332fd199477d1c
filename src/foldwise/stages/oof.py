"""Stage ``oof``: out-of-fold predictions of every fold model (with TTA) and the CV score.

params: task, folds, infer (tta, batch_size)
deps:   data/prepared/, data/folds.csv, data/models/
outs:   data/oof.csv (id, fold, true_<col>..., <pred col>...)
metrics/plots: metrics/oof/ ({"cv": {<metric>: ...}, "fold_<k>": {<metric>: ...}}, the task's OOF
        plot (plots/custom/oof.json) and every fold's per-epoch curves: val_curves (the task metric),
        train_loss_curves, val_loss_curves, lr_curves)
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from dvclive import Live

from ..core.atomic import write_csv
from ..core.errors import FoldwiseError, run_stage
from ..core.params import load_params
from ..engine.datasets import ShardDataset
from ..engine.inference import load_fold_model, predict
from ..engine.runtime import select_device
from ..engine.training import make_eval_loader
from ..prepared import load_split, meta_matrix, read_folds
from ..tasks import get_task


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
    p = load_params()
    task = get_task(p.task)
    index, reader = load_split(args.prepared, "train")
    fold_of = read_folds(args.folds, index)
    targets = index[task.target_columns].to_numpy(dtype=np.float64)
    meta = meta_matrix(index)
    device = select_device()
    preds = np.zeros((len(index), task.num_outputs))
    fold_scores = {}
    for k in p.folds:
        rows = np.flatnonzero(fold_of == k)
        model = load_fold_model(args.models / f"fold_{k}", device, p.train.channels_last)
        loader = make_eval_loader(ShardDataset(reader, rows, meta=meta[rows]), p.infer.batch_size, p.train.num_workers)
        preds[rows] = predict(model, loader, task, p, p.infer.tta, device)
        fold_scores[k] = task.metric(targets[rows], preds[rows])
        print(f"oof: fold {k}: {task.metric_name} {fold_scores[k]:.5f} (tta: {', '.join(p.infer.tta)})")
    cv = task.metric(targets, preds)
    print(f"oof: cv {task.metric_name} {cv:.5f}")

    oof = pd.DataFrame({"id": index["id"], "fold": fold_of})
    for j, col in enumerate(task.target_columns):
        oof[f"true_{col}"] = targets[:, j]
    for j, col in enumerate(task.pred_columns):
        oof[col] = preds[:, j]
    write_csv(oof, args.out)

    with Live(dir=str(args.live), dvcyaml=False, save_dvc_exp=False, report=None) as live:
        live.log_metric(f"cv/{task.metric_name}", cv, plot=False)
        for k, score in fold_scores.items():
            live.log_metric(f"fold_{k}/{task.metric_name}", score, plot=False)
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
