"""Reading the image task's train and test CSVs into tables, with one line per bad row or missing image."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..common.imagefolder import require_image_files
from ..common.tables import check_choices, check_filled, check_numbers, check_unique, read_csv_checked
from .targets import combination_strata, quantile_strata

if TYPE_CHECKING:
    from .task import ImagesTask


def read_train_table(task: ImagesTask, root: Path, n_folds: int) -> pd.DataFrame:
    """id (the image column), the targets as numbers (class index, 0/1 or value), stratify (with
    strata sized for ``n_folds``, the split's n_splits), group."""
    ip = task.ip
    path = root / ip.train_csv
    group = [ip.group] if ip.group else []
    df = read_csv_checked(path, [ip.image_column, *ip.targets, *group], dtype={ip.image_column: str})
    check_filled(df, path, [ip.image_column, *ip.targets, *group], key=ip.image_column)
    check_unique(df, path, ip.image_column)
    table = pd.DataFrame({"id": df[ip.image_column].astype(str)})
    if task.has_classes:
        codes = check_choices(df, path, ip.targets[0], {c: i for i, c in enumerate(task.classes)}, ip.image_column)
        table[ip.targets[0]] = codes.astype(np.float64)
        table["stratify"] = codes
    elif task.kind == "multilabel":
        for col in ip.targets:
            table[col] = check_numbers(df, path, col, lo=0, hi=1, integer=True, key=ip.image_column).to_numpy()
        table["stratify"] = combination_strata(table[ip.targets].to_numpy(), n_folds)
    else:
        for col in ip.targets:
            table[col] = check_numbers(df, path, col, key=ip.image_column).to_numpy()
        table["stratify"] = quantile_strata(table[ip.targets[0]].to_numpy(), n_folds)
    if ip.group:
        table["group"] = df[ip.group].astype(str).to_numpy()
    check_images(task, root, df, path)
    return table

def read_test_table(task: ImagesTask, root: Path) -> pd.DataFrame:
    """id (the image column) in the test CSV's order; target values it holds must be known classes."""
    ip = task.ip
    path = root / ip.test_csv
    df = read_csv_checked(path, [ip.image_column], dtype={ip.image_column: str})
    check_filled(df, path, [ip.image_column])
    check_unique(df, path, ip.image_column)
    target = ip.targets[0]
    if task.has_classes and target in df:  # empty cells are fine, labels must be known
        filled = df.assign(**{target: df[target].where(df[target].notna(), task.classes[0])})
        check_choices(filled, path, target, {c: i for i, c in enumerate(task.classes)}, ip.image_column)
    check_images(task, root, df, path)
    return pd.DataFrame({"id": df[ip.image_column].astype(str)})

def check_images(task: ImagesTask, root: Path, df: pd.DataFrame, path: Path) -> None:
    column = task.ip.image_column
    folder = root / task.ip.image_dir
    require_image_files((folder / v for v in df[column].astype(str)), path, column, df[column])
