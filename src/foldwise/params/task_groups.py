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
    """all six frames, or on_only: the ON-target frames 0, 2, 4 (not "on": YAML reads it as true)."""
    stack: Literal["vertical", "channels"] = "vertical"
    """vertical: frames stacked in time into one channel; channels: one channel per frame."""


class HmsParams(Group):
    """Which label rows to train on and how a spectrogram window becomes an image."""

    rows: Literal["all", "one_per_spectrogram"] = "all"
    """all label rows, or one_per_spectrogram (the earliest row of each)."""
    min_votes: int = Field(1, ge=1)
    """Drop label rows with fewer expert votes."""
    layout: Literal["channels", "stacked"] = "channels"
    """channels: LL, RL, LP, RP as 4 channels of 100 freq x 300 time; stacked: one 400 x 300 plane."""


class PetfinderParams(Group):
    """How photos are resized, whether the 12 flags feed the head, and the training loss."""

    resize: Resize = "squash"
    """squash to a square, or crop the centre square first."""
    use_meta: bool = True
    """Feed the 12 flags to the head beside the image features."""
    loss: Literal["bce", "mse"] = "bce"
    """bce on Pawpularity / 100, or mse."""


class MaskParams(Group):
    """Age groups, the model head and how the 384x512 portraits become squares."""

    age_bound_young: int = Field(30, ge=1)
    """Ages below this are age group 0 (below age_bound_old)."""
    age_bound_old: int = Field(60, ge=2)
    """Ages from this on are age group 2 (many teams moved it to 58 or 59)."""
    head: Literal["single", "multi"] = "single"
    """single: one 18-way softmax; multi: mask 3 + gender 2 + age 3 logits, summed cross-entropies, 18-class
    probabilities as their product."""
    resize: Resize = "squash"
    """squash the 384x512 portrait to a square, or crop its centre 384x384 first."""


class ImagesParams(Group):
    """A generic image folder: train CSV + test CSV + images (synthetic default: shapes)."""

    train_csv: str = "train.csv"
    """The train CSV, relative to the data folder."""
    test_csv: str = "test.csv"
    """The test CSV, relative to the data folder; also the submission template."""
    image_dir: str = "images"
    """The folder the image column's paths are relative to."""
    image_column: str = "image"
    """The column holding each image's path under image_dir; the sample id."""
    targets: list[str] = Field(default_factory=lambda: ["shape"])
    """Target column(s): one for binary and multiclass."""
    kind: Literal[KINDS] = "multiclass"
    """binary, multiclass, multilabel or regression."""
    classes: list[str] = Field(default_factory=lambda: ["circle", "square", "triangle"])
    """binary/multiclass labels in index order (binary: [negative, positive]); []: the train CSV's labels,
    sorted (recorded in data/prepared/labels.json); quote numbers, e.g. ['0', '1']."""
    group: str = "source"
    """A column kept whole within folds; "" for none."""
    metric: str = "accuracy"
    """A scikit-learn scorer name (accuracy, f1_macro, roc_auc, neg_log_loss, ...); logged without neg_."""
    resize: Resize = "squash"
    """squash to a square, or crop the centre square first."""


TASK_GROUPS: dict[str, type[Group]] = {
    "seti": SetiParams, "hms": HmsParams, "petfinder": PetfinderParams, "mask": MaskParams, "images": ImagesParams,
}
