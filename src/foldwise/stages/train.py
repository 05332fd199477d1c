"""Stage ``train@k``: fit one fold and keep its best epoch's weights and validation predictions.

params: see PARAMS below (dvc.yaml's list is generated from it)
deps:   data/prepared/, data/folds.csv, data/pretrained/ (the weights to start from, or "none")
outs:   data/models/fold_<k>/ (model.pt, val_preds.csv, history.csv),
        metrics/train/fold_<k>/ (dvclive: train/loss, val/loss, val/<metric>, lr per epoch; cached, not
        a metric or plot: oof reports every fold)
A last-epoch checkpoint in --checkpoint lets a killed run resume; it is removed when the fold ends.
With train.nproc > 1 the stage relaunches itself under torchrun (DDP, one fold over N processes);
started under torchrun already (RANK, WORLD_SIZE set: several machines), it joins that launch.
Only rank 0 writes outputs, checkpoints and dvclive files.
"""
from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.atomic import atomic_dir, write_csv
from ..core.errors import FoldwiseError, run_stage
from ..core.live import open_live
from ..engine import checkpoint, distributed
from ..engine.datasets import ShardDataset
from ..engine.inference import MODEL_FILE, save_fold_model
from ..engine.runtime import select_device
from ..engine.pretrained import SOURCE_FILE, read_pretrained
from ..engine.runtime import configure_threads, resolve_threads
from ..engine.training import Trainer
from ..engine.transforms import build_train_transform
from ..prepared import bind_labels, index_path, load_split, meta_matrix, read_folds
from .params import TASK_GROUP, load_stage, task_for

PARAMS = ("task", "seed", "model", "img_size", "n_splits", "epochs", "batch_size", "lr", "weight_decay", "train",
          "augment", "infer.batch_size", TASK_GROUP)  # infer.batch_size: the validation batches
CHECKS = ("model", "augment", "weights")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--fold", type=int, required=True)
    parser.add_argument("--prepared", type=Path, required=True)
    parser.add_argument("--folds", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--live", type=Path, required=True)
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--pretrained", type=Path, default=None, help="the pretrained stage's output folder")
    args = parser.parse_args(argv)
    p = load_stage("train", PARAMS, CHECKS)
    threads = resolve_threads(p.train.threads)  # a DDP fold's processes share them (distributed.setup)
    configure_threads(threads)
    task = bind_labels(task_for(p), args.prepared)
    if args.fold not in p.unchecked.folds:  # a guard, not a read: which other folds train does not change this one
        raise FoldwiseError(f"--fold {args.fold} is not in params folds {p.unchecked.folds}")
    if p.train.nproc > 1 and not distributed.launched():
        distributed.launch(p.train.nproc, "foldwise.stages.train", sys.argv[1:] if argv is None else argv)
        return
    use_cuda = select_device().type == "cuda"
    if p.train.sync_bn and distributed.launched() and not use_cuda:
        raise FoldwiseError("train.sync_bn needs CUDA (torch's SyncBatchNorm); on CPU keep it false: "
                            "BatchNorm statistics are averaged over the processes after every epoch")
    ctx, device = distributed.setup(use_cuda, threads)
    _train_fold(args, p, task, ctx, device)
    distributed.teardown()  # not on errors: a rank that raises exits, and torchrun stops the others


def _train_fold(args, p, task, ctx: distributed.Dist, device) -> None:
    index, reader = load_split(args.prepared, "train")
    fold_of = read_folds(args.folds, index, p.n_splits)
    train_rows, val_rows = np.flatnonzero(fold_of != args.fold), np.flatnonzero(fold_of == args.fold)
    targets = index[task.target_columns].to_numpy(dtype=np.float32)
    meta = meta_matrix(index)
    train_ds = ShardDataset(reader, train_rows, targets[train_rows], meta[train_rows],
                            build_train_transform(p.augment.train, p.seed))
    val_ds = ShardDataset(reader, val_rows, targets[val_rows], meta[val_rows])
    labels = index["stratify"].to_numpy()[train_rows]
    if ctx.is_main:
        print(f"train: fold {args.fold}: {len(train_rows)} train / {len(val_rows)} val samples, "
              f"{p.model} on {reader.image_shape} images"
              + (f", DDP over {ctx.world_size} processes" if ctx.enabled else ""))

    pretrained = read_pretrained(args.pretrained)
    trainer = Trainer(task, p, args.fold, train_ds, labels, val_ds, reader.image_shape[-1], meta.shape[1],
                      ctx, device, pretrained=pretrained, pretrained_dir=args.pretrained)
    # Neither inference settings nor which other folds train change this fold's training.
    train_params = p.unchecked.model_dump(exclude={"infer", "folds"})
    fingerprint = checkpoint.fingerprint(
        train_params, args.fold, [args.folds, index_path(args.prepared, "train")]
        + ([args.pretrained / SOURCE_FILE] if args.pretrained else [])
    )
    args.checkpoint.mkdir(parents=True, exist_ok=True)
    live_context = (open_live(args.live) if ctx.is_main
                    else contextlib.nullcontext())  # other ranks must not even create the dvclive folder
    with live_context as live:
        result = trainer.fit(live, args.checkpoint, fingerprint)
    if not ctx.is_main:
        return

    with atomic_dir(args.out) as tmp:
        save_fold_model(tmp / MODEL_FILE, trainer.model, trainer.model_config)
        preds = pd.DataFrame(result.val_preds, columns=task.prob_columns)
        write_csv(pd.concat([index[["id"]].iloc[val_rows].reset_index(drop=True), preds], axis=1),
                  tmp / "val_preds.csv")
        history = pd.DataFrame(result.history)
        history.insert(0, "epoch", np.arange(1, len(history) + 1))
        write_csv(history, tmp / "history.csv")
    checkpoint.clear(args.checkpoint)
    print(f"train: fold {args.fold}: best val/{task.metric_name} {result.best_score:.5f} "
          f"at epoch {result.best_epoch + 1}")


if __name__ == "__main__":
    run_stage("train", main)
