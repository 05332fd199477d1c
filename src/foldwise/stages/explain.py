"""Stage ``explain``: saliency overlays for the worst out-of-fold errors and the most confident right rows.

Rows are ranked by the task's per-row error (``Task.row_error``: SETI and PetFinder |pred - true|,
HMS the row's KL); the ``n_worst`` largest and the ``n_confident`` smallest are drawn with the fold
model that predicted them out of fold: Grad-CAM for CNNs, attention rollout for ViT-style models
(``explain.method``).

params: see PARAMS below (dvc.yaml's list is generated from it)
deps:   data/prepared/ (images, labels.json), data/models/, data/oof.csv
outs:   metrics/explain/{worst,confident}/<rank>_<id>.png (image plots of dvc.yaml)
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..core.atomic import atomic_dir
from ..core.errors import FoldwiseError, run_stage
from ..core.names import safe_file_name
from ..engine.inference import load_fold_model
from ..engine.runtime import select_device
from ..explain.maps import explained_output, resolve_method, saliency
from ..explain.render import compose, save_png
from ..prepared import bind_labels, load_split, meta_matrix
from ..prepared.display import to_display
from .params import TASK_GROUP, load_stage, task_for

PARAMS = ("task", "model", "explain", TASK_GROUP)
CHECKS = ()

METHOD_TITLES = {"gradcam": "Grad-CAM", "rollout": "attention rollout"}


def read_oof(path: Path, task, index: pd.DataFrame) -> pd.DataFrame:
    """oof.csv with ``row`` (position in the prepared index) and ``error`` columns added."""
    if not path.is_file():
        raise FoldwiseError(f"{path}: missing; run the oof stage")
    oof = pd.read_csv(path, dtype={"id": str})
    needed = ["id", "fold", *[f"true_{c}" for c in task.target_columns],
              *dict.fromkeys([*task.prob_columns, *task.pred_columns])]
    missing = [c for c in needed if c not in oof.columns]
    if missing:
        raise FoldwiseError(f"{path}: lacks column {missing[0]!r}; rerun the oof stage")
    position = pd.Series(np.arange(len(index)), index=index["id"])
    unknown = ~oof["id"].isin(position.index)
    if unknown.any():
        raise FoldwiseError(f"{path}: id {oof['id'][unknown].iloc[0]!r} is not in the prepared train index; rerun oof")
    oof["row"] = position.loc[oof["id"]].to_numpy()
    # true_ columns hold what target_labels shows (class names for the images task): back to targets
    targets = task.targets_from_labels(oof[[f"true_{c}" for c in task.target_columns]].to_numpy())
    oof["error"] = task.row_error(targets, oof[task.prob_columns].to_numpy(np.float64))
    return oof


def pick_rows(oof: pd.DataFrame, n_worst: int, n_confident: int) -> dict[str, pd.DataFrame]:
    """The ``n_worst`` largest errors and the ``n_confident`` smallest among the other rows (ties by id)."""
    ranked = oof.sort_values(["error", "id"], ascending=[False, True], kind="stable")
    worst = ranked.head(n_worst)
    rest = ranked.drop(worst.index)
    return {"worst": worst, "confident": rest.iloc[::-1].head(n_confident)}


def describe(task, row: pd.Series) -> str:
    """'true 1  pred 0.031  |pred - true| 0.969', by class (argmax) for multi-column targets, or the
    labels oof.csv writes for tasks that decode class probabilities (mask, images)."""
    if list(task.prob_columns) != list(task.pred_columns):
        truth = "  ".join(f"true {row[f'true_{t}']}  pred {row[c]}"
                          for t, c in zip(task.target_columns, task.pred_columns))
    elif len(task.pred_columns) == 1:
        (col,) = task.pred_columns
        truth = f"true {row[f'true_{task.target_columns[0]}']:.4g}  pred {row[col]:.4g}"
    else:
        true_vals = row[[f"true_{c}" for c in task.target_columns]].to_numpy(np.float64)
        pred_vals = row[task.pred_columns].to_numpy(np.float64)
        t, p = int(true_vals.argmax()), int(pred_vals.argmax())
        truth = (f"true {task.target_columns[t]} {true_vals[t] / true_vals.sum():.2f}  "
                 f"pred {task.pred_columns[p]} {pred_vals[p]:.2f}")
    return f"{truth}  {task.row_error_name} {row['error']:.3g}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--prepared", type=Path, required=True)
    parser.add_argument("--models", type=Path, required=True)
    parser.add_argument("--oof", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    p = load_stage("explain", PARAMS, CHECKS)
    task = bind_labels(task_for(p), args.prepared)
    index, reader = load_split(args.prepared, "train")
    meta = meta_matrix(index)
    oof = read_oof(args.oof, task, index)
    device = select_device()
    models: dict[int, torch.nn.Module] = {}
    counts = {}
    with atomic_dir(args.out) as out:
        for kind, rows in pick_rows(oof, p.explain.n_worst, p.explain.n_confident).items():
            (out / kind).mkdir()
            counts[kind] = len(rows)
            for rank, (_, row) in enumerate(rows.iterrows(), start=1):
                fold = int(row["fold"])
                if fold not in models:
                    models[fold] = load_fold_model(args.models / f"fold_{fold}", device, channels_last=False).eval()
                model = models[fold]
                method = resolve_method(p.explain.method, model, p.model)
                image_np = np.asarray(reader[int(row["row"])], dtype=np.float32)
                image = torch.from_numpy(image_np).permute(2, 0, 1)[None].contiguous().to(device)
                row_meta = torch.from_numpy(meta[[int(row["row"])]]).to(device) if model.n_meta else None
                with torch.no_grad():
                    output, sign = explained_output(model(image, row_meta)[0])
                heat = saliency(method, model, image, row_meta, output, p.model, sign)
                what = METHOD_TITLES[method]
                if method == "gradcam":
                    names = task.prob_columns if len(task.prob_columns) == model.head.out_features else []
                    what += f" of {'-' if sign < 0 else ''}{names[output] if names else f'output {output}'} (logit)"
                lines = [f"{kind} #{rank}  id {row['id']}  fold {fold}", describe(task, row), what]
                save_png(compose(to_display(image_np, task.rgb_images), heat, lines),
                         out / kind / f"{rank:02d}_{safe_file_name(str(row['id'])) or 'row'}.png")
    print(f"explain: {counts.get('worst', 0)} worst and {counts.get('confident', 0)} most confident OOF rows "
          f"drawn to {args.out} ({task.row_error_name} per row)")


if __name__ == "__main__":
    run_stage("explain", main)
