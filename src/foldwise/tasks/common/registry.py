"""Competition registry: ``task: <name>`` in params.yaml picks one of the modules in foldwise.tasks."""
from __future__ import annotations

import importlib

from .base import Task

# name -> module under foldwise.tasks; each module defines ``TASK``, an instance of a Task subclass.
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
