"""The ``hms`` params group."""
from __future__ import annotations

from dataclasses import dataclass

from ...core.params import bounded, choice


@dataclass(frozen=True)
class HmsParams:
    """Which label rows to train on and how a spectrogram window becomes an image."""

    rows: str = choice("all", "one_per_spectrogram", default="all")  # one: earliest row of each spectrogram
    min_votes: int = bounded(1, lo=1)  # drop label rows with fewer expert votes
    layout: str = choice("channels", "stacked", default="channels")
