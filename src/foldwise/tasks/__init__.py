"""One package per competition (seti, hms, petfinder, mask, images); common/ holds their interface and registry.

Each package keeps the competition (``task.py``: layout, reading, targets, metric, submission; ``losses.py``)
apart from its simulator (``synthetic.py``); its params group is declared in ``foldwise.params.task_groups``
and read as ``params.task_params``. A task's module-level imports are numpy, pandas, PIL, pydantic and
foldwise's own: torch is imported inside the methods that make a tensor (``loss``, ``logits_to_probs``).
docs/how-to/add-competition.md walks through adding one.
"""
from .common.registry import TASKS, get_task

__all__ = ["TASKS", "get_task"]
