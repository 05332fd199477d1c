"""The ``images`` params group."""
from __future__ import annotations

from dataclasses import dataclass, field

from ...core.params import choice
from ..common.imagefolder import RESIZES

KINDS = ("binary", "multiclass", "multilabel", "regression")
SHAPES = ("circle", "square", "triangle")  # the synthetic data's classes, the default ``classes``


@dataclass(frozen=True)
class ImagesParams:
    """Where the CSVs and images are, which columns are targets, and how they are scored."""

    train_csv: str = "train.csv"
    test_csv: str = "test.csv"
    image_dir: str = "images"
    image_column: str = "image"  # a path under image_dir
    targets: list[str] = field(default_factory=lambda: ["shape"])
    kind: str = choice(*KINDS, default="multiclass")
    # binary/multiclass labels in index order; []: the train CSV's labels, sorted (see the module docstring)
    classes: list[str] = field(default_factory=lambda: list(SHAPES))
    group: str = "source"  # a column kept whole within folds; "" for none
    metric: str = "accuracy"  # a scikit-learn scorer name
    resize: str = choice(*RESIZES, default="squash")  # crop: the centre square, then resize
