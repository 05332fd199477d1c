"""Predict a competition's test set with the exported fold models; writes the Kaggle submission.

    python predict.py --data /kaggle/input/<competition> --out submission.csv

Needs torch, timm, numpy, pandas and pydantic (HMS also pyarrow, as every Kaggle image has); not foldwise.
It runs foldwise's own preprocessing, TTA and fold averaging from the vendored copy beside it
(``foldwise_kaggle/``), with the params of the exported run (``params.json``) and the labels its
preprocess recorded (``labels.json``, e.g. the image task's classes), so it reproduces that run's
``data/submission.csv``. This file is copied verbatim by ``foldwise.export``.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from foldwise_kaggle.core.errors import FoldwiseError  # noqa: E402
from foldwise_kaggle.params import parse  # noqa: E402
from foldwise_kaggle.engine.datasets import ShardDataset  # noqa: E402
from foldwise_kaggle.engine.inference import predict_folds  # noqa: E402
from foldwise_kaggle.prepared.shards import ShardReader, write_shards  # noqa: E402
from foldwise_kaggle.tasks import get_task  # noqa: E402


def predict_test(data: Path, batch_size: int | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(submission, test predictions: id + prob columns, averaged as the infer stage writes them) for
    the competition folder ``data``."""
    params = parse(json.loads((HERE / "params.json").read_text()), source="params.json")
    labels = json.loads((HERE / "labels.json").read_text())
    task = get_task(params.task).for_params(params).with_labels(labels, "labels.json")
    table = task.read_table(data, "test", params).reset_index(drop=True)
    meta = table[task.meta_columns(params)].to_numpy(dtype=np.float32)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    with tempfile.TemporaryDirectory() as tmp:  # the same float16 shards the infer stage reads
        write_shards(Path(tmp), "test", task.iter_images(data, table, "test", params), len(table))
        dataset = ShardDataset(ShardReader(Path(tmp), "test"), np.arange(len(table)), meta=meta)
        mean = predict_folds([HERE / "models" / f"fold_{k}" for k in params.folds], dataset, task, params,
                             device, batch_size)
    preds = pd.DataFrame(mean, columns=task.prob_columns)
    preds.insert(0, "id", table["id"].to_numpy())
    sample_path = data / task.sample_submission
    sample = pd.read_csv(sample_path)
    sample[sample.columns[0]] = pd.read_csv(sample_path, usecols=[0], dtype=str).iloc[:, 0]  # ids verbatim
    return task.submission(sample, preds), preds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="the competition's folder (its Kaggle layout)")
    parser.add_argument("--out", type=Path, required=True, help="the submission CSV to write")
    parser.add_argument("--batch-size", type=int, default=None, help="default: the run's infer.batch_size")
    args = parser.parse_args()
    try:
        submission, _ = predict_test(args.data, args.batch_size)
    except FoldwiseError as exc:
        sys.exit(f"predict.py: error: {exc}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    submission.to_csv(args.out, index=False, float_format="%.8g")
    print(f"predict.py: {args.out} with {len(submission)} rows, columns {', '.join(submission.columns)}")


if __name__ == "__main__":
    main()
