"""Build the Kaggle export folder: fold models, params, vendored inference code and ``predict.py``.

Layout of OUT::

    dataset-metadata.json        for `kaggle datasets create -p OUT` (id, title, licenses)
    params.json                  the exported run's params.yaml
    labels.json                  what its train labels mean (data/prepared/labels.json, e.g. classes)
    models/fold_<k>/model.pt     each fold model (state dict + config), as the train stage saved it
    foldwise_kaggle/...          foldwise's own modules for reading, preprocessing, models and TTA,
                                 copied file by file (imports are relative, so they run unchanged):
                                 those predict.py imports, found by reading the imports (export/vendor.py)
    predict.py                   --data ROOT --out FILE: the run's data/submission.csv from the test set

The vendored modules import only numpy, pandas, torch, timm, PIL and pydantic (timm's own
dependencies, and Kaggle's images carry pydantic 2); pyarrow for HMS.
"""
from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import foldwise

from ..core.atomic import atomic_dir
from ..core.errors import FoldwiseError
from ..core.params import read_params_file
from ..engine.inference import MODEL_FILE
from ..prepared import bind_labels, read_labels
from ..params import load
from ..stages.params import task_for
from ..tasks import TASKS
from .vendor import vendored_files

PACKAGE = Path(foldwise.__file__).resolve().parent
VENDOR = "foldwise_kaggle"
PREDICT = Path(__file__).with_name("predict.py")


def vendored() -> list[str]:
    """The files (relative to the package) predict.py imports, and what those import in turn, plus every
    task package: the registry imports those by name, which no import statement shows."""
    return vendored_files(PACKAGE, PREDICT, [f"tasks.{module}" for module in TASKS.values()])


def default_id(task: str, model: str) -> str:
    """``<user>/foldwise-<task>-<model>``; user from KAGGLE_USERNAME (Kaggle slugs: a-z, 0-9, -)."""
    user = os.environ.get("KAGGLE_USERNAME", "your-kaggle-username")
    slug = re.sub(r"[^a-z0-9]+", "-", f"foldwise-{task}-{model}".lower()).strip("-")
    return f"{user}/{slug[:50]}"


def check_models(models: Path, folds: list[int], model: str) -> list[Path]:
    """Each fold's model file; one line naming the first missing or trained with another model."""
    import torch

    paths = []
    for k in folds:
        path = models / f"fold_{k}" / MODEL_FILE
        if not path.is_file():
            raise FoldwiseError(f"{path}: missing; run `dvc repro` (or `dvc exp apply <exp>`) before exporting")
        trained = torch.load(path, map_location="cpu", weights_only=False)["config"]["model"]
        if trained != model:
            raise FoldwiseError(f"{path}: trained as {trained} but params.yaml says model: {model}; "
                                "run `dvc repro` before exporting")
        paths.append(path)
    return paths


def build(out: Path, models: Path, params_file: Path, dataset_id: str | None, title: str | None,
          prepared: Path = Path("data/prepared")) -> Path:
    """Write the export folder ``out`` (replaced whole if it is an earlier export)."""
    p = load(params_file)
    model_paths = check_models(models, p.folds, p.model)
    bind_labels(task_for(p), prepared)  # one line now if predict.py could not decode
    labels = read_labels(prepared)
    if out.exists() and any(out.iterdir()) and not (out / "dataset-metadata.json").is_file():
        raise FoldwiseError(f"{out}: exists and is not a foldwise export; choose a new folder")
    competition = task_for(p).competition
    dataset_id = dataset_id or default_id(p.task, p.model)
    if not re.fullmatch(r"[^/\s]+/[a-z0-9][a-z0-9-]{2,49}", dataset_id):
        raise FoldwiseError(f"--id: '{dataset_id}' must be <user>/<slug>, slug 3-50 of a-z, 0-9 and -")
    with atomic_dir(out) as tmp:
        for k, path in zip(p.folds, model_paths):
            (tmp / "models" / f"fold_{k}").mkdir(parents=True)
            shutil.copy2(path, tmp / "models" / f"fold_{k}" / MODEL_FILE)
        for rel in vendored():
            (tmp / VENDOR / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(PACKAGE / rel, tmp / VENDOR / rel)
        (tmp / VENDOR / "__init__.py").write_text(
            f'"""foldwise {foldwise.__version__}: the modules predict.py needs, copied unchanged."""\n')
        shutil.copy2(PREDICT, tmp / "predict.py")
        raw = read_params_file(params_file)
        (tmp / "params.json").write_text(json.dumps(raw, indent=2) + "\n")
        (tmp / "labels.json").write_text(json.dumps(labels, indent=1) + "\n")
        metadata = {
            "title": (title or f"foldwise {p.task} {p.model}")[:50],
            "id": dataset_id,
            "licenses": [{"name": "CC0-1.0"}],
            "description": f"{len(p.folds)} fold models ({p.model}) for {competition}, exported by foldwise: "
                           f"`python predict.py --data /kaggle/input/{competition} --out submission.csv`.",
        }
        (tmp / "dataset-metadata.json").write_text(json.dumps(metadata, indent=2) + "\n")
    return out


def folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
