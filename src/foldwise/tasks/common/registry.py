"""Competition registry: ``task: <name>`` in params.yaml picks one of the packages in foldwise.tasks."""
from __future__ import annotations

import importlib

from .base import Task

# name -> package under foldwise.tasks; each exports ``TASK``, an instance of a Task subclass.
TASKS = {
    "seti": "seti",
    "hms": "hms",
    "petfinder": "petfinder",
    "mask": "mask",
    "images": "images",
}


def get_task(name: str) -> Task:
    """The task object for ``name`` (one of ``TASKS``)."""
    if name not in TASKS:
        from ...core.errors import FoldwiseError

        raise FoldwiseError(f"unknown task {name!r} (allowed: {', '.join(TASKS)})")
    return importlib.import_module(f"..{TASKS[name]}", __package__).TASK  # relative: also works vendored
