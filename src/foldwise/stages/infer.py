"""Stage ``infer``: every trained fold model (``folds``) predicts the test set (with TTA); predictions
are averaged.

params: see PARAMS below (dvc.yaml's list is generated from it)
deps:   data/prepared/, data/models/
outs:   data/test_preds.csv (id, <prob col>...): averaged, not yet decoded (submit decodes)
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.atomic import write_csv
from ..core.errors import run_stage
from ..engine.datasets import ShardDataset
from ..engine.inference import predict_folds
from ..engine.runtime import select_device
from ..prepared import bind_labels, load_split, meta_matrix
from .params import TASK_GROUP, load_stage, task_for

PARAMS = ("task", "folds", "n_splits", "infer", "train.amp", "train.channels_last", "train.num_workers", "train.threads",
          TASK_GROUP)
CHECKS = ()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--prepared", type=Path, required=True)
    parser.add_argument("--models", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    p = load_stage("infer", PARAMS, CHECKS)
    task = bind_labels(task_for(p), args.prepared)
    index, reader = load_split(args.prepared, "test")
    dataset = ShardDataset(reader, np.arange(len(index)), meta=meta_matrix(index))
    mean = predict_folds([args.models / f"fold_{k}" for k in p.folds], dataset, task, p, select_device())
    preds = pd.DataFrame(mean, columns=task.prob_columns)
    preds.insert(0, "id", index["id"])
    write_csv(preds, args.out)
    print(f"infer: {len(index)} test samples x {len(p.folds)} fold models (folds {sorted(p.folds)} "
          f"of {p.n_splits}) x {len(p.infer.tta)} TTA views")


if __name__ == "__main__":
    run_stage("infer", main)
