"""The dvclive logger every stage that logs metrics uses."""
from __future__ import annotations

from pathlib import Path


def open_live(folder: Path):
    """A ``dvclive.Live`` writing metrics and plots under ``folder`` only: no dvc.yaml of its own, no DVC
    experiment and no report, since dvc.yaml declares the folder as the stage's output. Use it as a
    context manager."""
    from dvclive import Live

    return Live(dir=str(folder), dvcyaml=False, save_dvc_exp=False, report=None)
