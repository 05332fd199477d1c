"""Stage ``eda``: look at the data before training, as DVC plots.

params: see PARAMS below (dvc.yaml's list is generated from it)
deps:   data/raw/, data/prepared/, data/folds.csv
outs:   metrics/eda/ (rendered by dvc.yaml's ``eda_*`` plots):
        balance.json  one row per (fold, class): count and share of the fold (regression: per
                      target bin; multilabel: samples carrying the label)
        sizes.json    one row per raw sample looked at (at most eda.max_images per split):
                      split, height, width, channels, read from file headers
        samples/NN_<class>.png  a grid of up to eda.grid prepared training images of each class
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from ..core.atomic import atomic_dir
from ..core.errors import FoldwiseError, run_stage
from ..core.names import safe_file_name
from ..prepared import bind_labels, load_split, read_folds
from ..prepared.display import to_display_bytes
from .params import TASK_GROUP, load_stage, task_for

PARAMS = ("task", "seed", "n_splits", "eda", TASK_GROUP)  # n_splits: the raw train table's strata
CHECKS = ()

TILE_GAP = 2  # pixels between the images of a sample grid


def class_membership(kind: str | None, targets: pd.DataFrame, stratify: pd.Series, bins: int,
                     names: list[str] | None = None) -> pd.DataFrame:
    """(N, classes) booleans: which class (or target bin, or label) each training row belongs to.

    ``kind`` is the task's ``target_kind``: binary and multiclass rows have one class (a one-column
    index, or the argmax of several columns such as HMS vote fractions), multilabel rows any number,
    regression rows the equal-width bin of the first target; None falls back on ``stratify``.
    ``names`` label class indices (default: the index, or the target columns' names).
    """
    values = targets.to_numpy(dtype=np.float64)
    if kind == "multilabel":
        return pd.DataFrame(values >= 0.5, columns=names or list(targets.columns))
    if kind == "regression":
        y = values[:, 0]
        edges = np.linspace(y.min(), y.max(), bins + 1)
        index = np.clip(np.searchsorted(edges, y, side="right") - 1, 0, bins - 1)
        labels = [f"{edges[b]:.4g}-{edges[b + 1]:.4g}" for b in range(bins)]
        return pd.DataFrame(index[:, None] == np.arange(bins), columns=labels)
    if kind in ("binary", "multiclass") and values.shape[1] > 1:
        index, labels = values.argmax(axis=1), names or list(targets.columns)
    elif kind in ("binary", "multiclass"):
        index = values[:, 0].astype(int)
        labels = names or [f"{targets.columns[0]}={k}" for k in range(int(index.max()) + 1)]
    else:
        codes, uniques = pd.factorize(stratify, sort=True)
        index, labels = codes, [f"stratify={u}" for u in uniques]
    return pd.DataFrame(index[:, None] == np.arange(len(labels)), columns=labels)


def balance_rows(members: pd.DataFrame, fold: np.ndarray) -> list[dict]:
    """Count and share of each class in each fold (share: of the fold's rows)."""
    rows = []
    for k in np.unique(fold):
        in_fold = members[fold == k]
        for name in members.columns:
            count = int(in_fold[name].sum())
            rows.append({"fold": f"fold_{k}", "class": str(name), "count": count,
                         "share": round(count / len(in_fold), 6)})
    return rows


def size_rows(task, raw: Path, params, max_images: int, seed: int) -> list[dict]:
    """Raw sample sizes (height, width, channels) of at most ``max_images`` rows per split."""
    rows = []
    for split in ("train", "test"):
        table = task.read_table(raw, split, params).reset_index(drop=True)
        if len(table) > max_images:
            pick = np.sort(np.random.default_rng((seed, 7)).choice(len(table), max_images, replace=False))
            table = table.iloc[pick].reset_index(drop=True)
        for height, width, channels in task.raw_sizes(raw, table, split, params):
            rows.append({"split": split, "height": int(height), "width": int(width), "channels": int(channels)})
    return rows


def sample_grid(images: list[np.ndarray]) -> Image.Image:
    """Tile uint8 (H, W, 3) images of one size into a near-square grid on a white background."""
    h, w = images[0].shape[:2]
    cols = int(np.ceil(np.sqrt(len(images))))
    rows = int(np.ceil(len(images) / cols))
    canvas = np.full((rows * (h + TILE_GAP) - TILE_GAP, cols * (w + TILE_GAP) - TILE_GAP, 3), 255, np.uint8)
    for i, image in enumerate(images):
        r, c = divmod(i, cols)
        canvas[r * (h + TILE_GAP):r * (h + TILE_GAP) + h, c * (w + TILE_GAP):c * (w + TILE_GAP) + w] = image
    return Image.fromarray(canvas)


def grid_file(i: int, name: str) -> str:
    """``NN_<class>.png`` with the class name reduced to safe file-name characters."""
    return f"{i:02d}_{safe_file_name(name) or 'class'}.png"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--raw", type=Path, required=True)
    parser.add_argument("--prepared", type=Path, required=True)
    parser.add_argument("--folds", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    p = load_stage("eda", PARAMS, CHECKS)
    task = bind_labels(task_for(p), args.prepared)
    index, reader = load_split(args.prepared, "train")
    fold = read_folds(args.folds, index)
    missing = [c for c in task.target_columns if c not in index]
    if missing:
        raise FoldwiseError(f"{args.prepared}/train.csv: missing target column(s) {', '.join(missing)}; "
                            "rerun the preprocess stage")
    members = class_membership(task.target_kind(p), index[task.target_columns], index["stratify"], p.eda.bins,
                               task.class_names(p))
    sizes = size_rows(task, args.raw, p, p.eda.max_images, p.seed)
    rng = np.random.default_rng((p.seed, 8))
    with atomic_dir(args.out) as tmp:
        (tmp / "balance.json").write_text(json.dumps(balance_rows(members, fold), indent=1))
        (tmp / "sizes.json").write_text(json.dumps(sizes, indent=1))
        (tmp / "samples").mkdir()
        for i, name in enumerate(members.columns):
            rows = np.flatnonzero(members[name].to_numpy())
            if len(rows) == 0:
                continue
            pick = np.sort(rng.choice(rows, min(p.eda.grid, len(rows)), replace=False))
            sample_grid([to_display_bytes(reader[int(r)], rgb=True) for r in pick]).save(tmp / "samples" / grid_file(i, str(name)))
    counts = members.sum().astype(int)
    print(f"eda: {len(index)} training rows in {len(np.unique(fold))} folds; classes "
          + ", ".join(f"{n} {c}" for n, c in counts.items())
          + f"; sizes of {len(sizes)} raw samples; grids in {args.out / 'samples'}")


if __name__ == "__main__":
    run_stage("eda", main)
