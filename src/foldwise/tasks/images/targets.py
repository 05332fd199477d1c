"""What the image task's targets need beside the task: the group's consistency, fold strata, plot bins."""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ...core.errors import FoldwiseError
from ...params.task_groups import ImagesParams

PROB_PREFIX = "p_"


def binned_pairs(true: np.ndarray, pred: np.ndarray, bins: int = 10) -> list[dict]:
    """(true, predicted) values as labels ``NN: lo-hi`` of the true values' quantile bins."""
    edges = np.unique(np.quantile(true, np.linspace(0, 1, bins + 1)))
    names = [f"{k:02d}: {lo:.3g}-{hi:.3g}" for k, (lo, hi) in enumerate(zip(edges[:-1], edges[1:]))] or ["00"]

    def bin_of(values: np.ndarray) -> np.ndarray:
        return np.clip(np.searchsorted(edges, values, side="right") - 1, 0, len(names) - 1)

    return [{"x": names[t], "y": names[p]} for t, p in zip(bin_of(true), bin_of(pred))]


# ---- params checks and strata -------------------------------------------------------------------
def check_group(ip: ImagesParams) -> None:
    """Contradictions inside the ``images`` group, one line each (values are checked by the loader)."""
    def bad(key: str, expected: str, got: Any) -> None:
        raise FoldwiseError(f"params.yaml: 'images.{key}' must be {expected}, got {got!r}")

    if not ip.targets:
        bad("targets", "at least one column", ip.targets)
    if ip.kind in ("binary", "multiclass") and len(ip.targets) != 1:
        bad("targets", f"one column for kind {ip.kind}", ip.targets)
    if ip.kind == "multiclass" and len(ip.classes) == 1:
        bad("classes", "the class labels (at least 2, e.g. [cat, dog, fox]; [] reads them from the train CSV) "
            "for kind multiclass", ip.classes)
    if ip.kind == "binary" and ip.classes and len(ip.classes) != 2:
        bad("classes", "[negative, positive] for kind binary ([] reads them from the train CSV)", ip.classes)
    if len(set(ip.classes)) != len(ip.classes):
        bad("classes", "distinct labels", ip.classes)
    if ip.image_column in ip.targets:
        bad("image_column", "a column of its own, not a target", ip.image_column)
    if ip.group and ip.group in [ip.image_column, *ip.targets]:
        bad("group", "a column of its own, not the image column or a target", ip.group)
    for key in ("train_csv", "test_csv", "image_dir", "image_column", "metric"):
        if not getattr(ip, key):
            bad(key, "set", "")


def quantile_strata(values: np.ndarray, n_folds: int) -> np.ndarray:
    """Quantile bin of each value (up to 10 bins, each with at least 2 * n_folds rows) for stratifying."""
    n_bins = int(np.clip(len(values) // (2 * n_folds), 1, 10))
    ranks = pd.Series(values).rank(method="first").to_numpy()
    return np.minimum(((ranks - 1) * n_bins // len(values)).astype(int), n_bins - 1)


def combination_strata(labels: np.ndarray, n_folds: int) -> np.ndarray:
    """Code of each row's label combination; combinations rarer than ``n_folds`` share one code."""
    codes, counts = np.unique(labels.astype(int), axis=0, return_inverse=True, return_counts=True)[1:]
    codes = codes.reshape(-1)
    rare = counts[codes] < n_folds
    codes = np.where(rare, -1, codes)
    if 0 < rare.sum() < n_folds:  # the pooled rare rows are still too few: join the largest stratum
        codes[rare] = np.bincount(codes[~rare]).argmax()
    return pd.factorize(codes, sort=True)[0]

