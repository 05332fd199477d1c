"""Stage ``submit``: the submission, validated against the task's template (``sample_submission.csv``;
mask: ``eval/info.csv``), with the averaged test predictions decoded by the task.

params: see PARAMS below (dvc.yaml's list is generated from it)
deps:   data/raw/ (its submission template), data/test_preds.csv, data/prepared/labels.json (how to decode)
outs:   data/submission.csv (same ids, order and columns as the template)
"""
from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from ..core.atomic import write_csv
from ..core.errors import FoldwiseError, run_stage
from ..prepared import bind_labels
from ..tasks.common.tables import read_csv_checked
from .params import TASK_GROUP, load_stage, task_for

PARAMS = ("task", TASK_GROUP)  # images: which columns are targets and how they decode
CHECKS = ()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--raw", type=Path, required=True, help="the raw data folder holding the template")
    parser.add_argument("--preds", type=Path, required=True)
    parser.add_argument("--prepared", type=Path, default=Path("data/prepared"),
                        help="the prepared data; only its labels.json is read")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    task = bind_labels(task_for(load_stage("submit", PARAMS, CHECKS)), args.prepared)
    sample_path = args.raw / task.sample_submission
    sample = read_csv_checked(sample_path, [])
    sample[sample.columns[0]] = pd.read_csv(sample_path, usecols=[0], dtype=str).iloc[:, 0]  # ids verbatim
    if not args.preds.is_file():
        raise FoldwiseError(f"{args.preds}: missing; run the infer stage")
    preds = pd.read_csv(args.preds, dtype={"id": str})
    submission = task.submission(sample, preds)
    write_csv(submission, args.out)
    print(f"submit: {args.out} with {len(submission)} rows, columns {', '.join(submission.columns)}")


if __name__ == "__main__":
    run_stage("submit", main)
