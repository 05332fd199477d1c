"""The ``mask`` params group."""
from __future__ import annotations

from dataclasses import dataclass

from ...core.params import bounded, choice
from ..common.imagefolder import RESIZES


@dataclass(frozen=True)
class MaskParams:
    """Age groups, the model head and how the 384x512 portraits become squares."""

    age_bound_young: int = bounded(30, lo=1)  # age below this: group 0
    age_bound_old: int = bounded(60, lo=2)  # age from this on: group 2 (teams moved it to 58-59)
    head: str = choice("single", "multi", default="single")  # multi: mask 3 + gender 2 + age 3 logits
    resize: str = choice(*RESIZES, default="squash")  # crop: the centre 384x384, then resize
