"""A generic image-folder task: a train CSV, a test CSV and a folder of images, set up by ``images:``.

Layout (every name comes from the ``images`` params group)::

    <train_csv>     e.g. train.csv: <image_column> (a path under image_dir), the <targets> columns,
                    optionally the <group> column; other columns are ignored
    <test_csv>      e.g. test.csv: <image_column>; also the submission template (its image column,
                    in its order, then the target columns)
    <image_dir>/    e.g. images/: the files the image columns name; any size, any PIL mode

``kind`` says what the targets are:

- ``binary``: one column with two classes, ``classes: [negative, positive]``; the model predicts
  P(positive) (``p_<positive>``), decoded with threshold 0.5.
- ``multiclass``: one column whose values are ``classes`` (strings allowed); softmax over the classes
  (``p_<class>`` each), decoded by argmax.
- ``multilabel``: several 0/1 columns; a sigmoid each (``p_<column>``), decoded with threshold 0.5.
- ``regression``: one or more numeric columns, predicted as they are (MSE loss).

For binary and multiclass, ``classes: []`` takes the classes from the train CSV: its labels sorted
(by value when all are numbers, else as text; for binary the last is the positive class).
``fit_labels`` reads them, the preprocess stage records them (prepared/labels.json) and every later
stage, the blend and the Kaggle export apply that record (``with_labels``), never guessing them.

Class labels are mapped to their index in ``classes`` for training and back to the labels in
``oof.csv`` (``true_<col>``, ``<col>``) and the submission. The metric is a scikit-learn scorer name
(``images.metric``), logged under its name without ``neg_`` (tasks/common/scorers.py).

The synthetic default is a small dataset in this layout: shapes (circle, square, triangle) of a
colour on a background per ``source`` (the group: a camera, say), images of 40-160 px in RGB, RGBA,
grey, palette and CMYK, as PNG and JPEG. Its train.csv also holds ``filled`` (yes/no), ``size`` (the
shape's radius over the image's short side) and ``red``/``blue`` (0/1, the colour's components), so
every kind can be tried on it.
"""
from __future__ import annotations

from ...params.task_groups import KINDS, ImagesParams
from .synthetic import SHAPES
from .targets import combination_strata, quantile_strata
from .task import TASK, ImagesTask

__all__ = ["KINDS", "SHAPES", "TASK", "ImagesParams", "ImagesTask", "combination_strata", "quantile_strata"]
