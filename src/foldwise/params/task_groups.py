"""Each task's own params group (``seti:``, ``hms:``, ...), read whichever task is active.

The tasks read them as ``params.task_params``; contradictions that need the task's knowledge (the
images group's columns and classes) are checked by the task itself (``Task.for_params``).
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from ..core.params import Group

Resize = Literal["squash", "crop"]  # squash: whole image to a square; crop: centre square, then resize
KINDS = ("binary", "multiclass", "multilabel", "regression")


class SetiParams(Group):
    """How a cadence becomes an image: which frames, and stacked in time or as channels."""

    frames: Literal["all", "on_only"] = "all"
    """all, or on_only: the ON-target frames 0, 2, 4 (not "on": YAML reads it as true)."""
    stack: Literal["vertical", "channels"] = "vertical"
    """vertical: frames stacked in time into one plane; channels: one channel per frame."""


class HmsParams(Group):
    """Which label rows to train on and how a spectrogram window becomes an image."""

    rows: Literal["all", "one_per_spectrogram"] = "all"
    """all, or one_per_spectrogram: the earliest label row of each spectrogram."""
    min_votes: int = Field(1, ge=1)
    """Drop label rows with fewer expert votes."""
    layout: Literal["channels", "stacked"] = "channels"
    """channels: LL RL LP RP as 4 channels; stacked: one 400x300 plane."""


class PetfinderParams(Group):
    """How photos are resized, whether the 12 flags feed the head, and the training loss."""

    resize: Resize = "squash"
    """squash, or crop: the centre square, then resize."""
    use_meta: bool = True
    """Feed the 12 flags to the head beside the image features."""
    loss: Literal["bce", "mse"] = "bce"
    """The training loss, both on Pawpularity / 100."""


class MaskParams(Group):
    """Age groups, the model head and how the 384x512 portraits become squares."""

    age_bound_young: int = Field(30, ge=1)
    """Age below this: age group 0."""
    age_bound_old: int = Field(60, ge=2)
    """Age from this on: age group 2 (many teams used 58 or 59)."""
    head: Literal["single", "multi"] = "single"
    """single: one 18-way head; multi: mask 3 + gender 2 + age 3 logits, summed losses."""
    resize: Resize = "squash"
    """squash, or crop: the centre 384x384 of the 384x512 portrait, then resize."""


class ImagesParams(Group):
    """A generic image folder: train CSV + test CSV + images (synthetic default: shapes)."""

    train_csv: str = "train.csv"
    """The train table: an image column and the target column(s)."""
    test_csv: str = "test.csv"
    """The test table, also the submission template: its image column, then the targets."""
    image_dir: str = "images"
    """The folder holding the images."""
    image_column: str = "image"
    """The column holding a path under image_dir."""
    targets: list[str] = Field(default_factory=lambda: ["shape"])
    """Target column(s)."""
    kind: Literal[KINDS] = "multiclass"
    """What the targets are."""
    classes: list[str] = Field(default_factory=lambda: ["circle", "square", "triangle"])
    """binary/multiclass labels in index order (binary: [negative, positive]); []: the train CSV's
    labels, sorted."""
    group: str = "source"
    """A column kept whole within folds; "" for none."""
    metric: str = "accuracy"
    """A scikit-learn scorer name (accuracy, f1_macro, roc_auc, neg_log_loss, ...)."""
    resize: Resize = "squash"
    """squash, or crop: the centre square, then resize."""


TASK_GROUPS: dict[str, type[Group]] = {
    "seti": SetiParams, "hms": HmsParams, "petfinder": PetfinderParams, "mask": MaskParams, "images": ImagesParams,
}
