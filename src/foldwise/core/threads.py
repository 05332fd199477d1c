"""This process's share of the machine's cores (no torch import: the parallel launcher uses it too)."""
from __future__ import annotations

import os

from .errors import FoldwiseError

# Set by `foldwise repro -j N` for each stage process it starts: that process's share of cores.
THREADS_ENV = "FOLDWISE_THREADS"


def cpu_cores() -> int:
    """Cores this process may run on (its affinity mask, not the machine's count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def resolve_threads(setting: int | str = "auto") -> int:
    """Threads of one stage process (its share of the cores): an integer ``setting`` as given;
    ``auto``: $FOLDWISE_THREADS when set, else every core in this process's CPU affinity."""
    if setting != "auto":
        return int(setting)
    value = os.environ.get(THREADS_ENV, "").strip()
    if not value:
        return cpu_cores()
    if not value.isdigit() or int(value) < 1:
        raise FoldwiseError(f"environment {THREADS_ENV}={value!r}: must be a whole number >= 1")
    return int(value)
