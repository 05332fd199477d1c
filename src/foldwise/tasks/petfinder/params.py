"""The ``petfinder`` params group."""
from __future__ import annotations

from dataclasses import dataclass

from ...core.params import choice
from ..common.imagefolder import RESIZES


@dataclass(frozen=True)
class PetfinderParams:
    """How photos are resized, whether the 12 flags feed the head, and the training loss."""

    resize: str = choice(*RESIZES, default="squash")  # crop: centre square, then resize
    use_meta: bool = True  # concatenate the 12 flags to the image features before the head
    loss: str = choice("bce", "mse", default="bce")  # both on Pawpularity / 100
