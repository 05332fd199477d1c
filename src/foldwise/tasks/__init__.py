"""One package per competition (seti, hms, petfinder, mask, images); common/ holds their interface and registry.

Each package keeps the competition (``task.py``: layout, reading, targets, metric, submission; ``losses.py``)
apart from its simulator (``synthetic.py``) and its params group (``params.py``). Importing a task loads
neither torch nor the simulator's drawing code beyond numpy, pandas and PIL: torch is imported inside
the methods that make a tensor (``loss``, ``logits_to_probs``).
"""
from .common.registry import TASKS, get_task

__all__ = ["TASKS", "get_task"]
