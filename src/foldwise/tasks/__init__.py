"""One module per competition (seti, hms, petfinder, mask); common/ holds their interface and registry."""
from .common.registry import TASKS, get_task

__all__ = ["TASKS", "get_task"]
