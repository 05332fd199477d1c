"""Stage ``download``: the raw competition data in the exact Kaggle layout.

params: see PARAMS below (dvc.yaml's list is generated from it)
outs:   data/raw/
"""
from __future__ import annotations

import argparse
from pathlib import Path

from ..core.atomic import atomic_dir
from ..core.errors import FoldwiseError, run_stage
from ..sources import copy_local, kaggle_download
from .params import TASK_GROUP, load_stage, task_for

PARAMS = ("task", "seed", "data", "synthetic", TASK_GROUP)  # images: its file names find and check the layout
CHECKS = ("model", "weights")  # fail fast: the first stage of a run


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    p = load_stage("download", PARAMS, CHECKS)
    task = task_for(p)
    with atomic_dir(args.out) as tmp:
        if p.data.source == "synthetic":
            s = p.synthetic
            print(f"download: synthetic {task.competition}: {s.n_train} train + {s.n_test} test (seed {p.seed})")
            task.generate(tmp, s.n_train, s.n_test, p.seed, s.strength)
        elif p.data.source == "kaggle":
            if not task.on_kaggle:
                raise FoldwiseError(f"data.source: kaggle: task {task.name} is not a Kaggle competition; "
                                    "download its archive yourself and use data.source: local")
            kaggle_download(task.competition, tmp, task.marker_file)
        else:
            print(f"download: copying {p.data.path}")
            copy_local(Path(p.data.path).expanduser(), tmp, task.marker_file)
        task.check_layout(tmp)


if __name__ == "__main__":
    run_stage("download", main)
