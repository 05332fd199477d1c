"""Stage ``preprocess``: raw data -> training-ready image shards and an index per split.

params: see PARAMS below (dvc.yaml's list is generated from it)
deps:   data/raw/
outs:   data/prepared/ (train.csv, train_NNN.npy, test.csv, test_NNN.npy, labels.json: what the train
        labels mean where params leave it open, e.g. images' classes; read by every later stage)
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from tqdm import tqdm

from ..core.atomic import atomic_dir, write_csv
from ..core.errors import run_stage
from ..prepared import META_PREFIX, index_path, labels_path, write_labels
from ..prepared.shards import write_shards
from .params import TASK_GROUP, load_stage, task_for

PARAMS = ("task", "img_size", "n_splits", TASK_GROUP)  # n_splits: petfinder and images size their strata by it
CHECKS = ()


def index_table(table, task, params, split: str):
    """The columns of a task table that later stages need, meta features renamed ``meta_*``."""
    keep = ["id"]
    if split == "train":
        keep += list(task.target_columns) + ["stratify"] + (["group"] if "group" in table else [])
    index = table[keep].copy()
    for col in task.meta_columns(params):
        index[META_PREFIX + col] = table[col].astype(float)
    return index


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--raw", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    p = load_stage("preprocess", PARAMS, CHECKS)
    task = task_for(p)
    task.check_layout(args.raw)
    labels = task.fit_labels(args.raw, p)
    task = task.with_labels(labels, str(labels_path(args.out)))
    with atomic_dir(args.out) as tmp:
        write_labels(tmp, labels)
        for split in ("train", "test"):
            table = task.read_table(args.raw, split, p).reset_index(drop=True)
            images = task.iter_images(args.raw, table, split, p)
            bar = tqdm(images, total=len(table), desc=f"preprocess {split}", unit="img", mininterval=1.0)
            shape = write_shards(tmp, split, bar, len(table))
            write_csv(index_table(table, task, p, split), index_path(tmp, split))
            print(f"preprocess: {split}: {len(table)} images of shape {shape} (H, W, C)")
    if labels:
        print(f"preprocess: labels {json.dumps(labels)} in {labels_path(args.out)}")


if __name__ == "__main__":
    run_stage("preprocess", main)
