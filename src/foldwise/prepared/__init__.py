"""The ``data/prepared`` folder written by ``preprocess`` and read by train, oof and infer.

Per split (``train``, ``test``): ``<split>.csv``, the index table (``id``, targets, ``stratify``,
``group`` and ``meta_*`` columns as the task provides), and ``<split>_NNN.npy`` image shards. Beside
them ``labels.json``: what the train labels mean where params leave it open (``Task.fit_labels``, e.g.
the generic image task's classes; ``{}`` for most tasks), applied by every later stage (``bind_labels``).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..core.errors import FoldwiseError
from .shards import ShardReader

META_PREFIX = "meta_"
LABELS_FILE = "labels.json"


def index_path(prepared: Path, split: str) -> Path:
    return prepared / f"{split}.csv"


def labels_path(prepared: Path) -> Path:
    return Path(prepared) / LABELS_FILE


def write_labels(prepared: Path, labels: dict) -> None:
    labels_path(prepared).write_text(json.dumps(labels, indent=1) + "\n")


def read_labels(prepared: Path) -> dict:
    """The recorded labels; {} when the folder records none (prepared before labels were recorded)."""
    path = labels_path(prepared)
    if not path.is_file():
        return {}
    try:
        labels = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FoldwiseError(f"{path}: not valid JSON ({exc}); rerun the preprocess stage") from None
    if not isinstance(labels, dict):
        raise FoldwiseError(f"{path}: must hold a JSON object; rerun the preprocess stage")
    return labels


def bind_labels(task: Any, prepared: Path) -> Any:
    """``task`` with the labels recorded in ``prepared`` in effect (``Task.with_labels``)."""
    return task.with_labels(read_labels(prepared), str(labels_path(prepared)))


def read_index(prepared: Path, split: str) -> pd.DataFrame:
    path = index_path(prepared, split)
    if not path.is_file():
        raise FoldwiseError(f"{path}: missing; run the preprocess stage")
    return pd.read_csv(path, dtype={"id": str})


def load_split(prepared: Path, split: str) -> tuple[pd.DataFrame, ShardReader]:
    index = read_index(prepared, split)
    reader = ShardReader(prepared, split)
    if len(reader) != len(index):
        raise FoldwiseError(f"{prepared}: {split} index has {len(index)} rows but shards hold {len(reader)}")
    return index, reader


def meta_matrix(index: pd.DataFrame) -> np.ndarray:
    """The ``meta_*`` columns as float32 (N, n_meta); (N, 0) when the task keeps none."""
    cols = [c for c in index.columns if c.startswith(META_PREFIX)]
    return index[cols].to_numpy(dtype=np.float32) if cols else np.zeros((len(index), 0), np.float32)


def read_folds(path: Path, index: pd.DataFrame, n_splits: int | None = None) -> np.ndarray:
    """Fold number per index row, from ``folds.csv`` (id, fold); with ``n_splits``, the file must hold
    exactly folds 0..n_splits-1 (a split made with another n_splits is stale)."""
    if not path.is_file():
        raise FoldwiseError(f"{path}: missing; run the split stage")
    folds = pd.read_csv(path, dtype={"id": str}).set_index("id")["fold"]
    missing = ~index["id"].isin(folds.index)
    if missing.any():
        raise FoldwiseError(f"{path}: no fold for id {index['id'][missing].iloc[0]!r}; rerun the split stage")
    if n_splits is not None and sorted(folds.unique().tolist()) != list(range(n_splits)):
        raise FoldwiseError(f"{path}: holds {folds.nunique()} folds but n_splits is {n_splits}; rerun the split stage")
    return folds.loc[index["id"]].to_numpy()
