"""The PetFinder task: the competition's layout, photos and flags, Pawpularity loss, RMSE and submission."""
from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np
import pandas as pd

from ...core.errors import FoldwiseError
from ..common.base import Task
from ..common.imagefolder import load_image, raw_image_sizes
from ..common.tables import check_filled, check_numbers, check_unique, read_csv_checked

if TYPE_CHECKING:
    import torch

FLAGS = ["Subject Focus", "Eyes", "Face", "Near", "Action", "Accessory", "Group", "Collage",
         "Human", "Occlusion", "Info", "Blur"]
TARGET = "Pawpularity"


class PetfinderTask(Task):
    name = "petfinder"
    competition = "petfinder-pawpularity-score"
    marker_file = "train.csv"
    metric_name = "rmse"
    greater_is_better = False
    target_columns = [TARGET]
    pred_columns = [TARGET]
    # Mirror and upside-down photos, as the seed's augmenter does (its ratings do not depend on them).
    train_augment = [{"HorizontalFlip": {"p": 0.5}}, {"VerticalFlip": {"p": 0.5}}]
    image_scale = "imagenet"  # load_photo: RGB / 255, then (x - IMAGENET_MEAN) / IMAGENET_STD
    rgb_images = True  # photos: explain overlays show them in colour

    def required_files(self) -> list[str]:
        return [self.marker_file, "test.csv", self.sample_submission, "train", "test"]

    # ---- synthetic data -------------------------------------------------------------------------
    def generate(self, root: Path, n_train: int, n_test: int, seed: int, strength: float) -> None:
        from .synthetic import generate

        generate(root, n_train, n_test, seed, strength, self.sample_submission)

    # ---- reading --------------------------------------------------------------------------------
    def read_table(self, root: Path, split: str, params: Any) -> pd.DataFrame:
        root = Path(root)
        use_meta = params.task_params.use_meta
        if split == "test":
            path = root / self.sample_submission
            sample = read_csv_checked(path, ["Id"], dtype={"Id": str})
            _check_ids(sample["Id"], path)
            table = pd.DataFrame({"id": sample["Id"].astype(str)})
            if use_meta:
                test_path = root / "test.csv"
                flags = _check_flags(read_csv_checked(test_path, ["Id", *FLAGS], dtype={"Id": str}), test_path)
                _check_ids(flags["Id"], test_path)
                by_id = flags.set_index("Id")
                missing = table["id"][~table["id"].isin(by_id.index)]
                if len(missing):
                    raise FoldwiseError(f"{test_path}: no row for Id {missing.iloc[0]!r} of {self.sample_submission}")
                for col in FLAGS:
                    table[col] = by_id.loc[table["id"], col].to_numpy(dtype=float)
            return table
        path = root / self.marker_file
        df = read_csv_checked(path, ["Id", *FLAGS, TARGET], dtype={"Id": str})
        _check_ids(df["Id"], path)
        df = _check_flags(df, path)
        score = check_numbers(df, path, TARGET, lo=1, hi=100, key="Id")
        table = pd.DataFrame({"id": df["Id"].astype(str), TARGET: score.astype(float)})
        bins = sturges_bins(table[TARGET].to_numpy())
        table["stratify"] = merge_sparse_bins(bins, min_count=params.n_splits)
        if use_meta:
            for col in FLAGS:
                table[col] = df[col].astype(float)
        return table

    def meta_columns(self, params: Any) -> list[str]:
        return list(FLAGS) if params.task_params.use_meta else []

    def iter_images(self, root: Path, table: pd.DataFrame, split: str, params: Any) -> Iterator[np.ndarray]:
        for pid in table["id"]:
            yield load_image(Path(root) / split / f"{pid}.jpg", f"Id {pid!r}", params.img_size, params.task_params.resize)

    def raw_sizes(self, root: Path, table: pd.DataFrame, split: str, params: Any) -> Iterator[tuple[int, int, int]]:
        """Each photo's size and band count, from its header (pixels are not decoded)."""
        return raw_image_sizes(Path(root) / split / f"{pid}.jpg" for pid in table["id"])

    # ---- learning -------------------------------------------------------------------------------
    def target_kind(self, params: Any) -> str:
        return "regression"

    def loss(self, params: Any) -> torch.nn.Module:
        from .losses import PawpularityLoss

        return PawpularityLoss(params.task_params.loss)

    def logits_to_probs(self, logits: torch.Tensor, params: Any) -> torch.Tensor:
        import torch

        logits = logits.float()
        scaled = torch.sigmoid(logits) if params.task_params.loss == "bce" else logits
        return (scaled * 100.0).clamp(1.0, 100.0)

    def metric(self, y_true: np.ndarray, y_pred: np.ndarray) -> float:
        y = np.asarray(y_true, dtype=np.float64).reshape(-1)
        p = np.asarray(y_pred, dtype=np.float64).reshape(-1)
        return float(np.sqrt(np.mean((y - p) ** 2)))

    # ---- outputs --------------------------------------------------------------------------------
    def oof_plot(self, y_true: np.ndarray, y_pred: np.ndarray) -> list[dict]:
        """Predicted (y) vs true (x) Pawpularity, one point per training image."""
        return [{"x": float(t), "y": float(p)}
                for t, p in zip(np.asarray(y_true).reshape(-1), np.asarray(y_pred).reshape(-1))]

    def check_submission(self, sub: pd.DataFrame) -> None:
        super().check_submission(sub)
        values = sub[TARGET].to_numpy(dtype=np.float64)
        if (values < 1).any() or (values > 100).any():
            raise FoldwiseError(f"submission {TARGET} must lie in [1, 100]")



# ---- table helpers ------------------------------------------------------------------------------
def sturges_bins(values: np.ndarray) -> np.ndarray:
    """Equal-width bin (0..k-1) of each value, k = floor(1 + log2(n)) (Sturges' rule)."""
    values = np.asarray(values, dtype=np.float64)
    k = int(math.floor(1 + math.log2(len(values))))
    return pd.cut(values, bins=k, labels=False).astype(int)


def merge_sparse_bins(bins: np.ndarray, min_count: int) -> np.ndarray:
    """Fold bins holding fewer than ``min_count`` samples into their nearest neighbour bin.

    The fold splitter needs every stratum to have at least one sample per fold; with small data the
    sparse top (or bottom) bins of the Sturges grid would otherwise stop the split.
    """
    bins = np.asarray(bins).copy()
    while True:
        labels, counts = np.unique(bins, return_counts=True)
        if len(labels) <= 1 or counts.min() >= min_count:
            return bins
        j = int(np.argmin(counts))
        target = labels[j + 1] if j == 0 else labels[j - 1] if j == len(labels) - 1 else (
            labels[j - 1] if counts[j - 1] <= counts[j + 1] else labels[j + 1])
        bins[bins == labels[j]] = target


def _check_ids(ids: pd.Series, path: Path) -> None:
    frame = ids.to_frame("Id")
    check_filled(frame, path, ["Id"])
    check_unique(frame, path, "Id")


def _check_flags(df: pd.DataFrame, path: Path) -> pd.DataFrame:
    for col in FLAGS:
        df[col] = check_numbers(df, path, col, lo=0, hi=1, integer=True, key="Id").astype(int)
    return df



TASK = PetfinderTask()
