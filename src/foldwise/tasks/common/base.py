"""The small interface every competition implements: layout, reading, targets, loss, metric, submission.

Stages only talk to a ``Task``; nothing in ``foldwise.stages`` branches on the task name. A task
package (``tasks/<name>/``) defines a subclass in ``task.py`` and exports ``TASK = MyTask()``, registered
by name in ``registry.TASKS``; its own params group (a pydantic model in ``foldwise.params.task_groups``)
reaches every method as ``params.task_params``. docs/how-to/add-competition.md lists the steps.

Conventions shared by all tasks:
- A *table* is a DataFrame with an ``id`` column (str) that keys one sample. The train table also
  holds ``target_columns`` (floats, already in the scale the metric compares), a ``stratify``
  column (int class or bin used by the fold splitter and the balanced sampler) and, where the
  competition needs a grouped split, a ``group`` column (e.g. patient id).
- An *image* is a float32 array of shape (H, W, C) with H == W == img_size.
- ``logits_to_probs`` maps model logits (N, num_logits) to *probabilities* (N, len(prob_columns)): the
  values that are averaged over TTA views and fold models (and blended across experiments).
  ``metric`` and ``oof_plot`` take targets and those averaged values.
- ``decode`` maps averaged values to the submission's values (N, len(pred_columns)); ``pred_columns``
  are exactly the submission's columns after its id column. Where the submission holds the averaged
  values themselves (SETI's probability, HMS's votes, PetFinder's score) ``prob_columns`` defaults to
  ``pred_columns`` and ``decode`` is the identity. A classification task whose submission holds a
  class (mask: integer ``ans``) sets ``prob_columns`` to one column per class and decodes by argmax;
  then ``oof.csv`` carries both the probabilities and the decoded columns, ``test_preds.csv`` the
  probabilities, and ``submission`` decodes.
- ``num_logits(params)`` is the width of the model's head (default ``len(prob_columns)``); a task
  with several heads (mask's 3 + 2 + 3) returns their total and combines them in ``loss``/``logits_to_probs``.
- ``target_labels`` shows targets as ``oof.csv``'s ``true_<col>`` columns (e.g. class names) and
  ``targets_from_labels`` reads those back (blend, explain).
- Where params leave the labels open (``images.classes: []``), ``fit_labels`` learns them from the raw
  train data, preprocess records them with the prepared data, and later stages apply the record with
  ``with_labels``, which returns a configured copy. A task whose columns depend on its params group
  (``images``) is set up the same way, by ``for_params``: the registry's task objects never change.
tests/test_task_contract.py checks these for every task.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Iterator

import numpy as np
import pandas as pd

from ...core.errors import FoldwiseError

if TYPE_CHECKING:  # torch loads only where a tensor is made (a task's loss and logits_to_probs), not with the task
    import torch


class Task:
    name: ClassVar[str]
    competition: ClassVar[str]  # Kaggle competition slug, for data.source: kaggle
    on_kaggle: ClassVar[bool] = True  # False: data.source: kaggle is refused (e.g. mask, an AI Stages competition)
    marker_file: ClassVar[str]  # a file at the root of the Kaggle layout (finds the root in a zip)
    sample_submission: ClassVar[str] = "sample_submission.csv"
    metric_name: ClassVar[str]  # used as val/<metric_name> and cv/<metric_name>
    greater_is_better: ClassVar[bool]
    rank_metric: ClassVar[bool] = False  # the metric sees only the order of predictions (e.g. ROC-AUC)
    target_columns: ClassVar[list[str]]
    pred_columns: ClassVar[list[str]]
    # What ``augment.train: auto`` means: only transforms that keep the label true for this data.
    train_augment: ClassVar[list[dict]] = []
    # What scale ``iter_images`` yields: "standardised" (each image, or each window, to mean 0 and
    # std 1) or "imagenet" (RGB in [0, 1] normalised with ImageNet's mean and std). Pretrained weights
    # that expect another mean/std get an input remap only for "imagenet" images (see engine/pretrained.py).
    image_scale: ClassVar[str] = "standardised"

    # ---- data: synthetic generator, layout, reading -------------------------------------------
    def generate(self, root: Path, n_train: int, n_test: int, seed: int, strength: float) -> None:
        """Write a synthetic dataset in the exact Kaggle layout under ``root`` (deterministic in seed)."""
        raise NotImplementedError

    def check_layout(self, root: Path) -> None:
        """Raise FoldwiseError naming the first file the Kaggle layout needs but ``root`` lacks."""
        for rel in self.required_files():
            if not (root / rel).exists():
                raise FoldwiseError(
                    f"{root / rel}: missing; not a {self.competition} dataset "
                    f"(expected {', '.join(self.required_files())})"
                )

    def for_params(self, params: Any) -> Task:
        """This task as ``params`` configure it: a configured copy where its layout, columns or metric
        depend on its params group (the generic ``images`` task), the task itself otherwise; one line on
        a contradiction inside the group. The registry's task object is never changed."""
        return self

    def required_files(self) -> list[str]:
        return [self.marker_file, self.sample_submission]

    def fit_labels(self, root: Path, params: Any) -> dict:
        """What the train labels mean where params leave it open, read from the raw data under ``root``
        (the generic ``images`` task: its classes, ``{"classes": [...]}``); {} for a task whose labels
        are fixed. The preprocess stage records it beside the prepared data (prepared/labels.json)."""
        return {}

    def with_labels(self, labels: dict, source: str) -> Task:
        """This task with recorded ``labels`` (from ``fit_labels``, read from ``source``) in effect: a
        configured copy where they change anything, the task itself otherwise. Stages call it through
        ``prepared.bind_labels``; the task object shared by the registry is never changed."""
        return self

    def read_table(self, root: Path, split: str, params: Any) -> pd.DataFrame:
        """The train or test table (see module docstring); validates labels. ``params`` is the full Params."""
        raise NotImplementedError

    def iter_images(
        self, root: Path, table: pd.DataFrame, split: str, params: Any
    ) -> Iterator[np.ndarray]:
        """Yield one float32 (img_size, img_size, C) image per table row, in table order."""
        raise NotImplementedError

    def in_chans(self, params: Any) -> int:
        """Channels C of the (img_size, img_size, C) images ``iter_images`` yields under ``params``."""
        return 3

    def raw_sizes(self, root: Path, table: pd.DataFrame, split: str, params: Any) -> Iterator[tuple[int, int, int]]:
        """(height, width, channels) of each table row's raw sample before preprocessing, read from
        file headers where the format allows; the ``eda`` stage plots them. None by default."""
        return iter(())

    def class_names(self, params: Any) -> list[str] | None:
        """Names of the classes in target index order, for the ``eda`` plots; None: derived from the
        target columns (see stages/eda.py)."""
        return None

    def meta_columns(self, params: Any) -> list[str]:
        """Tabular features kept beside the image and fed to the model's head (none by default)."""
        return []

    # ---- learning -------------------------------------------------------------------------------
    @property
    def prob_columns(self) -> list[str]:
        """The columns of ``logits_to_probs``'s output, averaged over TTA and folds (default: pred_columns)."""
        return self.pred_columns

    @property
    def num_outputs(self) -> int:
        """Width of ``logits_to_probs``'s output: len(prob_columns)."""
        return len(self.prob_columns)

    def num_logits(self, params: Any) -> int:
        """Width of the model's head, i.e. of the logits fed to ``loss`` and ``logits_to_probs``."""
        return self.num_outputs

    def loss(self, params: Any) -> torch.nn.Module:
        """A module mapping (logits (N, num_logits), targets (N, len(target_columns))) to a scalar."""
        raise NotImplementedError

    def logits_to_probs(self, logits: torch.Tensor, params: Any) -> torch.Tensor:
        """Logits (N, num_logits) -> values to average (N, len(prob_columns)), e.g. probabilities."""
        raise NotImplementedError

    def target_labels(self, targets: np.ndarray) -> np.ndarray:
        """Targets (N, T) as ``oof.csv`` shows them in ``true_<col>`` (e.g. class names); the identity by default."""
        return targets

    def targets_from_labels(self, labels: np.ndarray) -> np.ndarray:
        """The inverse of ``target_labels``: ``true_<col>`` values (N, T) as read back from ``oof.csv``
        -> float64 targets (N, T), as the metric takes them. Numbers by default."""
        try:
            return np.asarray(labels, dtype=np.float64)
        except (TypeError, ValueError):
            bad = next(v for v in np.asarray(labels, dtype=object).reshape(-1) if not _is_number(v))
            raise FoldwiseError(f"task {self.name}: targets must be numbers, got {bad!r}") from None

    def decode(self, probs: np.ndarray) -> np.ndarray:
        """Averaged ``logits_to_probs`` values (N, len(prob_columns)) -> submission values (N, len(pred_columns)).

        The identity by default; a class submission returns e.g. the argmax as int64 (N, 1)."""
        return probs

    def metric(self, y_true: np.ndarray, y_pred: np.ndarray) -> float:
        """The competition metric of averaged predictions (N, len(prob_columns)) against targets (N, T)."""
        raise NotImplementedError

    def target_kind(self, params: Any) -> str | None:
        """How scikit-learn scorers (``metrics.extra``) see the targets: ``binary``, ``multiclass``,
        ``multilabel`` or ``regression`` (tasks/common/scorers.py maps targets and predictions for
        each); None: the task's targets suit no scorer."""
        return None

    def is_better(self, score: float, best: float | None) -> bool:
        if best is None:
            return True
        return score > best if self.greater_is_better else score < best

    # ---- outputs --------------------------------------------------------------------------------
    def oof_plot(self, y_true: np.ndarray, y_pred: np.ndarray) -> list[dict]:
        """Points ``{"x": ..., "y": ...}`` of the task's out-of-fold plot, drawn by the DVC template
        ``.dvc/plots/<task name>.json`` (e.g. SETI: ROC curve points; PetFinder: true vs predicted)."""
        raise NotImplementedError

    # ---- explain: ranking rows by error, showing their images ----------------------------------
    row_error_name: ClassVar[str] = "|pred - true|"
    rgb_images: ClassVar[bool] = False  # explain shows 3-channel images in colour, else the channel mean

    def row_error(self, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
        """Error of each row (N,), larger is worse, of targets (N, T) against averaged predictions
        (N, len(prob_columns)): mean |pred - true| over the columns where they match one to one; for a
        class-index target against class probabilities (T == 1 < P), 1 - the true class's probability."""
        y_true, y_pred = np.asarray(y_true, dtype=np.float64), np.asarray(y_pred, dtype=np.float64)
        if y_true.shape[1] == 1 and y_pred.shape[1] > 1:
            return 1.0 - y_pred[np.arange(len(y_pred)), y_true[:, 0].astype(int)]
        return np.abs(y_pred - y_true).mean(axis=1)

    def submission(self, sample: pd.DataFrame, preds: pd.DataFrame) -> pd.DataFrame:
        """Fill the sample submission from ``preds`` (``id`` + prob_columns, the averaged test predictions)
        with ``decode``d values; same ids, order and columns as the sample."""
        id_col = sample.columns[0]
        if list(sample.columns[1:]) != list(self.pred_columns):
            raise FoldwiseError(
                f"{self.sample_submission}: columns {list(sample.columns)} do not match "
                f"{[id_col, *self.pred_columns]}"
            )
        by_id = preds.assign(id=preds["id"].astype(str)).set_index("id")
        keys = sample[id_col].astype(str)
        missing = keys[~keys.isin(by_id.index)]
        if len(missing):
            raise FoldwiseError(
                f"test predictions lack {len(missing)} id(s) of {self.sample_submission}, "
                f"e.g. {missing.iloc[0]!r}"
            )
        out = sample[[id_col]].copy()
        missing_cols = [c for c in self.prob_columns if c not in by_id.columns]
        if missing_cols:
            raise FoldwiseError(f"test predictions lack column(s) {', '.join(missing_cols)}; rerun the infer stage")
        values = self.decode(by_id.loc[keys.to_numpy(), self.prob_columns].to_numpy(dtype=np.float64))
        out[self.pred_columns] = values
        self.check_submission(out)
        return out

    def check_submission(self, sub: pd.DataFrame) -> None:
        values = sub[self.pred_columns].to_numpy(dtype=np.float64)
        if not np.isfinite(values).all():
            raise FoldwiseError("submission holds NaN or infinite predictions")


def _is_number(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True
