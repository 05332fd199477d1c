"""The generic image-folder task: set up by the ``images`` params group (see the package docstring)."""
from __future__ import annotations

import copy
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np
import pandas as pd

from ...core.errors import FoldwiseError
from ..common.base import Task
from ..common.imagefolder import load_image, raw_image_sizes
from ..common.tables import check_filled, label_key, read_csv_checked, sorted_labels
from .reading import read_test_table, read_train_table
from ...params.task_groups import ImagesParams
from .targets import PROB_PREFIX, binned_pairs, check_group

if TYPE_CHECKING:
    import torch


class ImagesTask(Task):
    name = "images"
    competition = "an image folder (train/test CSV + images)"
    on_kaggle = False
    image_scale = "imagenet"  # load_image: RGB / 255, then (x - IMAGENET_MEAN) / IMAGENET_STD
    # Shapes keep their class, colour, size and fill under flips.
    train_augment = [{"HorizontalFlip": {"p": 0.5}}, {"VerticalFlip": {"p": 0.5}}]

    def __init__(self):
        self.configure_group(ImagesParams())

    # ---- set up from params.yaml's images group --------------------------------------------------
    def for_params(self, params: Any) -> ImagesTask:
        """A copy set up from ``params.images`` (see ``configure_group``)."""
        task = copy.copy(self)
        task.configure_group(params.images)
        return task

    def configure_group(self, ip: ImagesParams) -> None:
        """Columns, classes and metric name from an ``images`` group; one line on a contradiction."""
        check_group(ip)
        self.ip = ip
        self.kind = ip.kind
        self.marker_file = ip.train_csv
        self.sample_submission = ip.test_csv
        self.metric_name = ip.metric.removeprefix("neg_")
        self.target_columns = list(ip.targets)
        self.pred_columns = list(ip.targets)
        self._scorer = None
        self.use_classes(list(ip.classes) if self.has_classes else [])

    @property
    def has_classes(self) -> bool:
        """Whether the targets are class labels (binary, multiclass)."""
        return self.kind in ("binary", "multiclass")

    def use_classes(self, classes: list[str]) -> None:
        """Set the classes (in index order) and the prob columns named after them; [] leaves a class
        kind's classes unknown until ``with_labels`` applies the recorded ones."""
        self._classes = classes
        if self.kind == "multiclass":
            self._prob_columns = [PROB_PREFIX + c for c in classes] if classes else None
        elif self.kind == "binary":
            self._prob_columns = [PROB_PREFIX + classes[1]] if classes else None
        elif self.kind == "multilabel":
            self._prob_columns = [PROB_PREFIX + t for t in self.ip.targets]
        else:
            self._prob_columns = list(self.ip.targets)

    @property
    def classes(self) -> list[str]:
        """The class labels in index order ([] for multilabel and regression)."""
        if self.has_classes and not self._classes:
            raise self._unknown_classes()
        return self._classes

    @property
    def prob_columns(self) -> list[str]:
        if self._prob_columns is None:
            raise self._unknown_classes()
        return self._prob_columns

    def _unknown_classes(self) -> FoldwiseError:
        return FoldwiseError(f"images.classes is [] and no classes are recorded yet: the preprocess stage reads "
                             f"them from {self.ip.train_csv} and records them with the prepared data; run it first")

    # ---- classes recorded with the prepared data -------------------------------------------------
    def fit_labels(self, root: Path, params: Any) -> dict:
        """``{"classes": [...]}`` for binary/multiclass: ``images.classes`` when given (read_train
        checks the CSV against them), else the train CSV's labels sorted; {} for other kinds."""
        if not self.has_classes:
            return {}
        if self.ip.classes:
            return {"classes": list(self.ip.classes)}
        path = Path(root) / self.ip.train_csv
        target = self.ip.targets[0]
        df = read_csv_checked(path, [target], dtype={target: str})
        check_filled(df, path, [target])
        classes = sorted_labels(df, path, target)
        if (self.kind == "binary" and len(classes) != 2) or len(classes) < 2:
            need = "2 (negative, positive)" if self.kind == "binary" else "at least 2"
            raise FoldwiseError(f"{path}: {target} holds {len(classes)} label(s) ({', '.join(classes)}); kind "
                                f"{self.kind} needs {need}; set images.kind or images.classes")
        return {"classes": classes}

    def with_labels(self, labels: dict, source: str) -> "ImagesTask":
        """A copy with the recorded classes in effect (one line if they contradict ``images.classes``);
        the task itself for multilabel and regression, or when nothing is recorded but the classes are given."""
        if not self.has_classes:
            return self
        recorded = labels.get("classes")
        if recorded is None and self._classes:
            return self
        if (not isinstance(recorded, list) or not all(isinstance(c, str) for c in recorded)
                or len(set(recorded)) != len(recorded) or len(recorded) < 2
                or (self.kind == "binary" and len(recorded) != 2)):
            raise FoldwiseError(f"{source}: no valid {self.kind} classes recorded (got {recorded!r}); "
                                "rerun the preprocess stage")
        if self.ip.classes and list(self.ip.classes) != recorded:
            raise FoldwiseError(f"{source}: records classes {recorded}, but images.classes is "
                                f"{list(self.ip.classes)}; rerun the preprocess stage")
        if recorded == self._classes:
            return self
        bound = copy.copy(self)
        bound.use_classes(list(recorded))
        return bound

    @property
    def scorer(self):
        """The ``images.metric`` scorer, looked up on first use (sklearn.metrics costs ~2 s to import)."""
        if self._scorer is None:
            from ..common.scorers import check_scorer

            self._scorer = check_scorer(self.ip.metric, self.kind, "images.metric", self.name)
        return self._scorer

    @property
    def greater_is_better(self) -> bool:
        return self.scorer.greater_is_better

    def required_files(self) -> list[str]:
        return [self.ip.train_csv, self.ip.test_csv, self.ip.image_dir]

    # ---- synthetic data -------------------------------------------------------------------------
    def generate(self, root: Path, n_train: int, n_test: int, seed: int, strength: float) -> None:
        from .synthetic import generate

        generate(Path(root), n_train, n_test, seed, strength)

    # ---- reading --------------------------------------------------------------------------------
    def read_table(self, root: Path, split: str, params: Any) -> pd.DataFrame:
        root = Path(root)
        return self.read_test(root) if split == "test" else self.read_train(root, params.n_splits)

    def read_train(self, root: Path, n_folds: int) -> pd.DataFrame:
        """id (the image column), the targets as numbers (class index, 0/1 or value), stratify (with
        strata sized for ``n_folds``, the split's n_splits), group."""
        return read_train_table(self, root, n_folds)

    def read_test(self, root: Path) -> pd.DataFrame:
        """id (the image column) in the test CSV's order; target values it holds must be known classes."""
        return read_test_table(self, root)

    def iter_images(self, root: Path, table: pd.DataFrame, split: str, params: Any) -> Iterator[np.ndarray]:
        folder = Path(root) / self.ip.image_dir
        for image in table["id"]:
            yield load_image(folder / image, f"{self.ip.image_column} {image!r}", params.img_size, self.ip.resize)

    def raw_sizes(self, root: Path, table: pd.DataFrame, split: str, params: Any) -> Iterator[tuple[int, int, int]]:
        folder = Path(root) / self.ip.image_dir
        return raw_image_sizes(folder / image for image in table["id"])

    def class_names(self, params: Any) -> list[str] | None:
        if self.has_classes:
            return self.classes
        return list(self.ip.targets) if self.kind == "multilabel" else None

    # ---- learning -------------------------------------------------------------------------------
    def target_kind(self, params: Any) -> str:
        return self.kind

    def num_logits(self, params: Any) -> int:
        return len(self.prob_columns)

    def loss(self, params: Any) -> torch.nn.Module:
        from .losses import ImagesLoss

        return ImagesLoss(self.kind, params.train.label_smoothing, params.train.pos_weight)

    def logits_to_probs(self, logits: torch.Tensor, params: Any) -> torch.Tensor:
        import torch

        logits = logits.float()
        if self.kind == "multiclass":
            return torch.softmax(logits, dim=1)
        if self.kind in ("binary", "multilabel"):
            return torch.sigmoid(logits)
        return logits

    def metric(self, y_true: np.ndarray, y_pred: np.ndarray) -> float:
        return self.scorer(self.kind, y_true, y_pred)

    def decode(self, probs: np.ndarray) -> np.ndarray:
        """Averaged predictions -> the submission's values: class labels (object array), 0/1 or values."""
        probs = np.asarray(probs, dtype=np.float64)
        names = np.array(self.classes, dtype=object)
        if self.kind == "multiclass":
            return names[probs.argmax(axis=1)][:, None]
        if self.kind == "binary":
            return names[(probs[:, 0] >= 0.5).astype(int)][:, None]
        if self.kind == "multilabel":
            return (probs >= 0.5).astype(np.int64)
        return probs

    def target_labels(self, targets: np.ndarray) -> np.ndarray:
        """Class indices back to their labels (binary, multiclass); other targets as they are."""
        if self.has_classes:
            return np.array(self.classes, dtype=object)[np.asarray(targets).astype(int)]
        return np.asarray(targets)

    def targets_from_labels(self, labels: np.ndarray) -> np.ndarray:
        """Labels (N, 1) -> class indices as float64 (N, 1) (binary, multiclass; matched by ``label_key``,
        so ``1`` read back by pandas finds class ``"1"``); other targets as numbers."""
        if not self.has_classes:
            return super().targets_from_labels(labels)
        lookup = {label_key(c): float(i) for i, c in enumerate(self.classes)}
        values = np.asarray(labels, dtype=object)
        codes = np.array([lookup.get(label_key(v), np.nan) for v in values.reshape(-1)]).reshape(values.shape)
        if np.isnan(codes).any():
            bad = values.reshape(-1)[np.flatnonzero(np.isnan(codes.reshape(-1)))[0]]
            raise FoldwiseError(f"label {bad!r} is not one of the classes {', '.join(self.classes)}")
        return codes

    # ---- outputs --------------------------------------------------------------------------------
    def oof_plot(self, y_true: np.ndarray, y_pred: np.ndarray) -> list[dict]:
        """(true, predicted) pairs that ``.dvc/plots/images.json`` counts into a confusion matrix:
        class labels; ``<label>=0/1`` per row and label (multilabel); the decile of the true values
        each value falls in (regression, first target)."""
        if self.has_classes:
            true, pred = self.target_labels(y_true)[:, 0], self.decode(y_pred)[:, 0]
            return [{"x": str(t), "y": str(p)} for t, p in zip(true, pred)]
        if self.kind == "multilabel":
            pred = self.decode(y_pred)
            return [{"x": f"{c}={int(t)}", "y": f"{c}={int(p)}"} for j, c in enumerate(self.target_columns)
                    for t, p in zip(np.asarray(y_true)[:, j], pred[:, j])]
        return binned_pairs(np.asarray(y_true)[:, 0], np.asarray(y_pred)[:, 0])

    def submission(self, sample: pd.DataFrame, preds: pd.DataFrame) -> pd.DataFrame:
        """The test CSV's image column, in its order, then the target columns (decoded predictions)."""
        column = self.ip.image_column
        if column not in sample:
            raise FoldwiseError(f"{self.ip.test_csv}: missing column {column}")
        template = sample[[column]].copy()
        template[column] = template[column].astype(str)
        for col in self.pred_columns:
            template[col] = 0
        return super().submission(template, preds)

    def check_submission(self, sub: pd.DataFrame) -> None:
        if self.has_classes:
            bad = ~sub[self.pred_columns[0]].isin(self.classes)
            if bad.any():
                raise FoldwiseError(f"submission {self.pred_columns[0]} holds {sub[self.pred_columns[0]][bad].iloc[0]!r}, "
                                    f"not one of images.classes")
            return
        super().check_submission(sub)



TASK = ImagesTask()
