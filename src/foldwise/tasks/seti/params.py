"""The ``seti`` params group."""
from __future__ import annotations

from dataclasses import dataclass

from ...core.params import choice


@dataclass(frozen=True)
class SetiParams:
    """How a cadence becomes an image: which frames, and stacked in time or as channels."""

    frames: str = choice("all", "on_only", default="all")  # ON-target frames 0, 2, 4 only (not "on": YAML reads it as true)
    stack: str = choice("vertical", "channels", default="vertical")
