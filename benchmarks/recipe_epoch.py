"""Seconds per epoch of each recipe row (docs/how-to/recipes.md: the write-ups as `dvc exp run` one-liners).

    python benchmarks/recipe_epoch.py [--batches 2] [--rows SETI,HMS]

For each row: its exact params (applied to params.yaml by DVC's own `-S` code) on a small
synthetic dataset of that task, generated and preprocessed at the row's img_size by the real
stages; then fold 0's ``Trainer`` runs one epoch over ``--batches`` full training batches and one
validation pass, both timed after one untimed round of each (warm-up). Weights are random (``train.pretrained`` off): the speed is the same.
The default params.yaml is timed first, as the yardstick for the others on a busy machine.
Printed: train and validation seconds per image, and the extrapolation to one epoch of one fold of
the default data (1500 samples, 5 folds: 1200 training + 300 validation images). Model building
and data preparation are not counted.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests")]

from foldwise.stages.params import load_params  # noqa: E402
from foldwise.engine.datasets import ShardDataset  # noqa: E402
from foldwise.engine.training import Trainer  # noqa: E402
from foldwise.engine.transforms import build_train_transform  # noqa: E402
from foldwise.prepared import load_split, meta_matrix, read_folds  # noqa: E402
from foldwise.stages import download, preprocess, split  # noqa: E402
from foldwise.tasks import get_task  # noqa: E402
from test_recipes import apply_row, recipe_rows  # noqa: E402

FOLDS = 5
DEFAULT_TRAIN, DEFAULT_VAL = 1200, 300


def time_row(overrides: list[str], batches: int, workdir: Path) -> dict:
    given = dict(o.split("=", 1) for o in overrides)
    batch = int(given.get("batch_size", 32))
    # fold 0 trains on >= batches full batches; >= 300 so that every SETI fold has a positive and
    # every HMS class has 5 label rows
    n_train = max(300, batch * batches * FOLDS // (FOLDS - 1) + FOLDS)
    apply_row(workdir, overrides, {"epochs": 1, "folds": list(range(FOLDS)), "train": {"pretrained": False},
                                   "synthetic": {"n_train": n_train, "n_test": 2}})
    cwd = os.getcwd()
    os.chdir(workdir)
    try:
        download.main(["--out", "data/raw"])
        preprocess.main(["--raw", "data/raw", "--out", "data/prepared"])
        split.main(["--index", "data/prepared/train.csv", "--out", "data/folds.csv"])
        p = load_params()
        task = get_task(p.task)
        index, reader = load_split(Path("data/prepared"), "train")
        fold_of = read_folds(Path("data/folds.csv"), index)
        train_rows, val_rows = np.flatnonzero(fold_of != 0), np.flatnonzero(fold_of == 0)
        train_rows = train_rows[: batch * batches]
        targets = index[task.target_columns].to_numpy(dtype=np.float32)
        meta = meta_matrix(index)
        train_ds = ShardDataset(reader, train_rows, targets[train_rows], meta[train_rows],
                                build_train_transform(p.augment.train, p.seed))
        val_ds = ShardDataset(reader, val_rows, targets[val_rows], meta[val_rows])
        trainer = Trainer(task, p, 0, train_ds, index["stratify"].to_numpy()[train_rows], val_ds,
                          reader.image_shape[-1], meta.shape[1])
        trainer.train_epoch(0)  # warm-up: first-call allocations and kernel selection are not per epoch
        start = time.perf_counter()
        trainer.train_epoch(1)
        train_s = time.perf_counter() - start
        trainer.validate()
        start = time.perf_counter()
        trainer.validate()
        val_s = time.perf_counter() - start
    finally:
        os.chdir(cwd)
    per_train, per_val = train_s / len(train_rows), val_s / len(val_rows)
    return {"model": p.model, "img_size": p.img_size, "train_s_per_img": per_train, "val_s_per_img": per_val,
            "epoch_s": per_train * DEFAULT_TRAIN + per_val * DEFAULT_VAL}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=2, help="full training batches timed per row")
    parser.add_argument("--rows", default="", help="comma-separated words of the write-up names, e.g. SETI,HMS (default: all)")
    args = parser.parse_args()
    wanted = set(filter(None, args.rows.split(",")))
    print(f"torch threads {torch.get_num_threads()}, cpu count {os.cpu_count()}, load {os.getloadavg()[0]:.1f}")
    # the default run (params.yaml as it is) first: on a shared machine only ratios to it travel
    for name, overrides in [("default params.yaml", ["task=seti"]), *recipe_rows()]:
        if wanted and not set(name.lower().split()) & {w.lower() for w in wanted} and not name.startswith("default"):
            continue
        with tempfile.TemporaryDirectory() as tmp:
            r = time_row(overrides, args.batches, Path(tmp))
        print(f"{name}: {r['model']} @ {r['img_size']} px: train {r['train_s_per_img']:.3f} s/img, "
              f"val {r['val_s_per_img']:.3f} s/img -> {r['epoch_s']:.0f} s per epoch "
              f"({DEFAULT_TRAIN} train + {DEFAULT_VAL} val images)", flush=True)


if __name__ == "__main__":
    main()
