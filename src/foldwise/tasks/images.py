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

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd
import torch
from PIL import Image, ImageDraw

from ..core.errors import FoldwiseError
from ..core.params import choice
from .common.base import Task
from .common.imagefolder import RESIZES, load_image, require_image_files
from .common.tables import (
    check_choices, check_filled, check_numbers, check_unique, label_key, read_csv_checked, sorted_labels,
)

KINDS = ("binary", "multiclass", "multilabel", "regression")
PROB_PREFIX = "p_"

# Synthetic data
SHAPES = ("circle", "square", "triangle")
SHAPE_RATES = (0.45, 0.35, 0.20)
COLOURS = {(1, 0): (220, 40, 40), (0, 1): (40, 70, 220), (1, 1): (200, 40, 200), (0, 0): (40, 170, 60)}  # (red, blue)
FORMATS = (("RGB", "png"), ("RGB", "jpg"), ("RGBA", "png"), ("L", "png"), ("P", "png"), ("L", "jpg"), ("CMYK", "jpg"))
FORMAT_RATES = (0.3, 0.3, 0.1, 0.08, 0.08, 0.07, 0.07)


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


class ImagesTask(Task):
    name = "images"
    competition = "an image folder (train/test CSV + images)"
    on_kaggle = False
    Params = ImagesParams
    image_scale = "imagenet"  # load_image: RGB / 255, then (x - IMAGENET_MEAN) / IMAGENET_STD
    # Shapes keep their class, colour, size and fill under flips.
    train_augment = [{"HorizontalFlip": {"p": 0.5}}, {"VerticalFlip": {"p": 0.5}}]

    def __init__(self):
        self.configure_group(ImagesParams())

    # ---- set up from params.yaml's images group --------------------------------------------------
    def configure(self, params: Any) -> None:
        self.configure_group(params.tasks["images"])

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
            from .common.scorers import check_scorer

            self._scorer = check_scorer(self.ip.metric, self.kind, "images.metric", self.name)
        return self._scorer

    @property
    def greater_is_better(self) -> bool:
        return self.scorer.greater_is_better

    def required_files(self) -> list[str]:
        return [self.ip.train_csv, self.ip.test_csv, self.ip.image_dir]

    # ---- synthetic data -------------------------------------------------------------------------
    def generate(self, root: Path, n_train: int, n_test: int, seed: int, strength: float) -> None:
        generate(Path(root), n_train, n_test, seed, strength)

    # ---- reading --------------------------------------------------------------------------------
    def read_table(self, root: Path, split: str, params: Any) -> pd.DataFrame:
        root = Path(root)
        return self.read_test(root) if split == "test" else self.read_train(root, params.n_splits)

    def read_train(self, root: Path, n_folds: int) -> pd.DataFrame:
        """id (the image column), the targets as numbers (class index, 0/1 or value), stratify (with
        strata sized for ``n_folds``, the split's n_splits), group."""
        ip = self.ip
        path = root / ip.train_csv
        group = [ip.group] if ip.group else []
        df = read_csv_checked(path, [ip.image_column, *ip.targets, *group], dtype={ip.image_column: str})
        check_filled(df, path, [ip.image_column, *ip.targets, *group], key=ip.image_column)
        check_unique(df, path, ip.image_column)
        table = pd.DataFrame({"id": df[ip.image_column].astype(str)})
        if self.has_classes:
            codes = check_choices(df, path, ip.targets[0], {c: i for i, c in enumerate(self.classes)}, ip.image_column)
            table[ip.targets[0]] = codes.astype(np.float64)
            table["stratify"] = codes
        elif self.kind == "multilabel":
            for col in ip.targets:
                table[col] = check_numbers(df, path, col, lo=0, hi=1, integer=True, key=ip.image_column).to_numpy()
            table["stratify"] = combination_strata(table[ip.targets].to_numpy(), n_folds)
        else:
            for col in ip.targets:
                table[col] = check_numbers(df, path, col, key=ip.image_column).to_numpy()
            table["stratify"] = quantile_strata(table[ip.targets[0]].to_numpy(), n_folds)
        if ip.group:
            table["group"] = df[ip.group].astype(str).to_numpy()
        self.check_images(root, df, path)
        return table

    def read_test(self, root: Path) -> pd.DataFrame:
        """id (the image column) in the test CSV's order; target values it holds must be known classes."""
        ip = self.ip
        path = root / ip.test_csv
        df = read_csv_checked(path, [ip.image_column], dtype={ip.image_column: str})
        check_filled(df, path, [ip.image_column])
        check_unique(df, path, ip.image_column)
        target = ip.targets[0]
        if self.has_classes and target in df:  # empty cells are fine, labels must be known
            filled = df.assign(**{target: df[target].where(df[target].notna(), self.classes[0])})
            check_choices(filled, path, target, {c: i for i, c in enumerate(self.classes)}, ip.image_column)
        self.check_images(root, df, path)
        return pd.DataFrame({"id": df[ip.image_column].astype(str)})

    def check_images(self, root: Path, df: pd.DataFrame, path: Path) -> None:
        column = self.ip.image_column
        folder = root / self.ip.image_dir
        require_image_files((folder / v for v in df[column].astype(str)), path, column, df[column])

    def iter_images(self, root: Path, table: pd.DataFrame, split: str, params: Any) -> Iterator[np.ndarray]:
        folder = Path(root) / self.ip.image_dir
        for image in table["id"]:
            yield load_image(folder / image, f"{self.ip.image_column} {image!r}", params.img_size, self.ip.resize)

    def raw_sizes(self, root: Path, table: pd.DataFrame, split: str, params: Any) -> Iterator[tuple[int, int, int]]:
        folder = Path(root) / self.ip.image_dir
        for image in table["id"]:
            with Image.open(folder / image) as img:
                yield img.height, img.width, len(img.getbands())

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
        return ImagesLoss(self.kind, params.train.label_smoothing, params.train.pos_weight)

    def predict(self, logits: torch.Tensor, params: Any) -> torch.Tensor:
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


class ImagesLoss(torch.nn.Module):
    """Cross-entropy on the class index (N, 1) or on class probabilities (N, C), the one-hot rows
    CutMix/MixUp blend (multiclass), BCE with logits (binary, multilabel; targets smoothed toward
    0.5), or MSE (regression), for logits (N, num_logits) and targets (N, T)."""

    def __init__(self, kind: str, smoothing: float = 0.0, pos_weight: float = 1.0):
        super().__init__()
        self.kind, self.smoothing = kind, smoothing
        # a buffer, moved to the device once with the module (a tensor made per step is a host copy each)
        self.register_buffer("pos_weight", torch.tensor([pos_weight]), persistent=False)
        self.class_targets = kind == "multiclass"  # the Trainer mixes them as one-hot rows (engine/mixing.py)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        logits, targets = logits.float(), targets.float()
        if self.kind == "multiclass":
            classes = targets[:, 0].long() if targets.shape[1] == 1 else targets  # indices or (N, C) probabilities
            return torch.nn.functional.cross_entropy(logits, classes, label_smoothing=self.smoothing)
        if self.kind in ("binary", "multilabel"):
            targets = targets * (1.0 - self.smoothing) + 0.5 * self.smoothing
            return torch.nn.functional.binary_cross_entropy_with_logits(logits, targets, pos_weight=self.pos_weight)
        return torch.nn.functional.mse_loss(logits, targets)


def binned_pairs(true: np.ndarray, pred: np.ndarray, bins: int = 10) -> list[dict]:
    """(true, predicted) values as labels ``NN: lo-hi`` of the true values' quantile bins."""
    edges = np.unique(np.quantile(true, np.linspace(0, 1, bins + 1)))
    names = [f"{k:02d}: {lo:.3g}-{hi:.3g}" for k, (lo, hi) in enumerate(zip(edges[:-1], edges[1:]))] or ["00"]

    def bin_of(values: np.ndarray) -> np.ndarray:
        return np.clip(np.searchsorted(edges, values, side="right") - 1, 0, len(names) - 1)

    return [{"x": names[t], "y": names[p]} for t, p in zip(bin_of(true), bin_of(pred))]


# ---- params checks and strata -------------------------------------------------------------------
def check_group(ip: ImagesParams) -> None:
    """Contradictions inside the ``images`` group, one line each (values are checked by the loader)."""
    def bad(key: str, expected: str, got: Any) -> None:
        raise FoldwiseError(f"params.yaml: 'images.{key}' must be {expected}, got {got!r}")

    if not ip.targets:
        bad("targets", "at least one column", ip.targets)
    if ip.kind in ("binary", "multiclass") and len(ip.targets) != 1:
        bad("targets", f"one column for kind {ip.kind}", ip.targets)
    if ip.kind == "multiclass" and len(ip.classes) == 1:
        bad("classes", "the class labels (at least 2, e.g. [cat, dog, fox]; [] reads them from the train CSV) "
            "for kind multiclass", ip.classes)
    if ip.kind == "binary" and ip.classes and len(ip.classes) != 2:
        bad("classes", "[negative, positive] for kind binary ([] reads them from the train CSV)", ip.classes)
    if len(set(ip.classes)) != len(ip.classes):
        bad("classes", "distinct labels", ip.classes)
    if ip.image_column in ip.targets:
        bad("image_column", "a column of its own, not a target", ip.image_column)
    if ip.group and ip.group in [ip.image_column, *ip.targets]:
        bad("group", "a column of its own, not the image column or a target", ip.group)
    for key in ("train_csv", "test_csv", "image_dir", "image_column", "metric"):
        if not getattr(ip, key):
            bad(key, "set", "")


def quantile_strata(values: np.ndarray, n_folds: int) -> np.ndarray:
    """Quantile bin of each value (up to 10 bins, each with at least 2 * n_folds rows) for stratifying."""
    n_bins = int(np.clip(len(values) // (2 * n_folds), 1, 10))
    ranks = pd.Series(values).rank(method="first").to_numpy()
    return np.minimum(((ranks - 1) * n_bins // len(values)).astype(int), n_bins - 1)


def combination_strata(labels: np.ndarray, n_folds: int) -> np.ndarray:
    """Code of each row's label combination; combinations rarer than ``n_folds`` share one code."""
    codes, counts = np.unique(labels.astype(int), axis=0, return_inverse=True, return_counts=True)[1:]
    codes = codes.reshape(-1)
    rare = counts[codes] < n_folds
    codes = np.where(rare, -1, codes)
    if 0 < rare.sum() < n_folds:  # the pooled rare rows are still too few: join the largest stratum
        codes[rare] = np.bincount(codes[~rare]).argmax()
    return pd.factorize(codes, sort=True)[0]


# ---- synthetic generator ------------------------------------------------------------------------
def generate(root: Path, n_train: int, n_test: int, seed: int, strength: float) -> None:
    """train.csv, test.csv and images/<source>/<n>.<png|jpg> (see the module docstring)."""
    n_sources = max(8, (n_train + n_test) // 25)
    src_rng = np.random.default_rng((seed, 0))
    backgrounds = src_rng.integers(60, 200, (n_sources, 3))
    noise = src_rng.uniform(4, 14, n_sources)
    for split, n, stream in (("train", n_train, 1), ("test", n_test, 2)):
        rng = np.random.default_rng((seed, stream))
        rows = []
        for i in range(n):
            source = int(rng.integers(n_sources))
            shape = SHAPES[int(rng.choice(len(SHAPES), p=SHAPE_RATES))]
            red, blue = (int(v) for v in rng.integers(0, 2, 2))
            filled = bool(rng.random() < 0.5)
            size = float(rng.uniform(0.15, 0.45))
            mode, ext = FORMATS[int(rng.choice(len(FORMATS), p=FORMAT_RATES))]
            img_rng = np.random.default_rng((seed, 10 + stream, i))
            image = render(img_rng, shape, COLOURS[(red, blue)], filled, size, backgrounds[source], noise[source],
                           strength)
            rel = f"src_{source:02d}/{split}_{i:05d}.{ext}"
            path = root / "images" / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            save(image, mode, path)
            rows.append({"image": rel, "shape": shape, "filled": "yes" if filled else "no", "size": round(size, 4),
                         "red": red, "blue": blue, "source": f"src_{source:02d}"})
        table = pd.DataFrame(rows)
        if split == "train":
            table.to_csv(root / "train.csv", index=False)
        else:
            table[["image", "source"]].to_csv(root / "test.csv", index=False)


def render(rng: np.random.Generator, shape: str, colour: tuple, filled: bool, size: float, background: np.ndarray,
           noise: float, strength: float) -> Image.Image:
    """One RGB picture of 40-160 px a side: a shape of ``size`` x the short side on a noisy background.
    ``strength`` < 1 fades the shape into the background."""
    w, h = (int(v) for v in rng.integers(40, 161, 2))
    img = Image.new("RGB", (w, h), tuple(int(v) for v in background))
    draw = ImageDraw.Draw(img)
    fade = float(np.clip(strength, 0.0, 1.0))
    ink = tuple(int(b + (c - b) * fade) for c, b in zip(colour, background))
    r = size * min(w, h)
    cx, cy = rng.uniform(r, w - r), rng.uniform(r, h - r)
    box = [cx - r, cy - r, cx + r, cy + r]
    width = 0 if filled else max(2, int(r / 5))
    fill = ink if filled else None
    if shape == "circle":
        draw.ellipse(box, fill=fill, outline=ink, width=width or 1)
    elif shape == "square":
        draw.rectangle(box, fill=fill, outline=ink, width=width or 1)
    else:
        points = [(cx, cy - r), (cx + r * 0.87, cy + r * 0.5), (cx - r * 0.87, cy + r * 0.5)]
        draw.polygon(points, fill=fill, outline=ink, width=width or 1)
    arr = np.asarray(img, dtype=np.float32) + rng.normal(0, noise / max(strength, 0.1), (h, w, 3)).astype(np.float32)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def save(image: Image.Image, mode: str, path: Path) -> None:
    if mode == "RGBA":
        alpha = Image.new("L", image.size, 255)
        image = image.copy()
        image.putalpha(alpha)
    elif mode == "P":
        image = image.convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    elif mode != "RGB":
        image = image.convert(mode)
    image.save(path, quality=90) if path.suffix == ".jpg" else image.save(path)


TASK = ImagesTask()
