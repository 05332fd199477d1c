"""Stage ``split``: assign every training sample to a fold, stratified (and grouped where the task has groups).

params: see PARAMS below (dvc.yaml's list is generated from it)
deps:   data/prepared/train.csv
outs:   data/folds.csv (id, fold)
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

from ..core.atomic import write_csv
from ..core.errors import FoldwiseError, run_stage
from .params import load_stage

PARAMS = ("seed", "n_splits")  # not folds: which folds train does not change the split
CHECKS = ()


def assign_folds(index: pd.DataFrame, n_folds: int, seed: int) -> np.ndarray:
    """Fold per row: StratifiedKFold on ``stratify``, or StratifiedGroupKFold when ``group`` exists."""
    y = index["stratify"].to_numpy()
    counts = pd.Series(y).value_counts()
    if counts.min() < n_folds:
        raise FoldwiseError(
            f"class {counts.idxmin()} of 'stratify' has {counts.min()} sample(s), fewer than the {n_folds} folds"
        )
    fold = np.full(len(index), -1, dtype=int)
    if "group" in index:
        splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
        splits = splitter.split(index, y, groups=index["group"].to_numpy())
    else:
        splits = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed).split(index, y)
    for k, (_, val_rows) in enumerate(splits):
        fold[val_rows] = k
    check_folds(index, fold, n_folds)
    return fold


def check_folds(index: pd.DataFrame, fold: np.ndarray, n_folds: int) -> None:
    """Fail loudly on a split that would make a fold's score meaningless or leak groups."""
    n_classes = index["stratify"].nunique()
    for k in range(n_folds):
        in_fold = index["stratify"][fold == k]
        if in_fold.nunique() < min(n_classes, 2):
            raise FoldwiseError(f"fold {k} ends up without every class ({in_fold.nunique()} of {n_classes})")
    if "group" in index:
        per_group = pd.Series(fold).groupby(index["group"].to_numpy()).nunique()
        leaked = per_group[per_group > 1]
        if len(leaked):
            raise FoldwiseError(f"group {leaked.index[0]} appears in {leaked.iloc[0]} folds")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--index", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    p = load_stage("split", PARAMS, CHECKS)
    if not args.index.is_file():
        raise FoldwiseError(f"{args.index}: missing; run the preprocess stage")
    index = pd.read_csv(args.index, dtype={"id": str})
    fold = assign_folds(index, p.n_splits, p.seed)
    write_csv(pd.DataFrame({"id": index["id"], "fold": fold}), args.out)
    sizes = np.bincount(fold, minlength=p.n_splits)
    print(f"split: {len(index)} samples into {p.n_splits} folds of sizes {sizes.tolist()}")


if __name__ == "__main__":
    run_stage("split", main)
