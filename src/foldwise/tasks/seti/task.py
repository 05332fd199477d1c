"""The SETI task: the competition's layout, reading cadences into images, loss, metric and submission."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np
import pandas as pd

from ...core.errors import FoldwiseError
from ..common.base import Task
from ..common.imaging import resize_area
from ..common.tables import read_csv_checked

if TYPE_CHECKING:
    import torch

CADENCE_SHAPE = (6, 273, 256)
ON_FRAMES = (0, 2, 4)


class SetiTask(Task):
    name = "seti"
    competition = "seti-breakthrough-listen"
    marker_file = "train_labels.csv"
    metric_name = "auc"
    greater_is_better = True
    rank_metric = True
    target_columns = ["target"]
    pred_columns = ["target"]
    # A needle stays a needle reversed in time or mirrored in frequency (the seed's flips).
    train_augment = [{"HorizontalFlip": {"p": 0.5}}, {"VerticalFlip": {"p": 0.5}}]

    def required_files(self) -> list[str]:
        return [self.marker_file, self.sample_submission, "train", "test"]

    # ---- synthetic data -------------------------------------------------------------------------
    def generate(self, root: Path, n_train: int, n_test: int, seed: int, strength: float) -> None:
        from .synthetic import generate

        generate(root, n_train, n_test, seed, strength, self.sample_submission)

    # ---- reading --------------------------------------------------------------------------------
    def read_table(self, root: Path, split: str, params: Any) -> pd.DataFrame:
        if split == "test":
            sample = read_csv_checked(root / self.sample_submission, ["id", "target"])
            return pd.DataFrame({"id": sample["id"].astype(str)})
        path = root / self.marker_file
        labels = read_csv_checked(path, ["id", "target"])
        bad = ~labels["target"].isin([0, 1])
        if bad.any():
            row = labels[bad].iloc[0]
            raise FoldwiseError(f"{path}: target must be 0 or 1, got {row['target']} for id {row['id']!r}")
        if labels["id"].duplicated().any():
            raise FoldwiseError(f"{path}: duplicate id {labels['id'][labels['id'].duplicated()].iloc[0]!r}")
        target = labels["target"].astype(int)
        return pd.DataFrame(
            {"id": labels["id"].astype(str), "target": target.astype(float), "stratify": target}
        )

    def in_chans(self, params: Any) -> int:
        if params.task_params.stack == "vertical":
            return 1
        return len(ON_FRAMES) if params.task_params.frames == "on_only" else CADENCE_SHAPE[0]

    def iter_images(self, root: Path, table: pd.DataFrame, split: str, params: Any) -> Iterator[np.ndarray]:
        frames = list(ON_FRAMES) if params.task_params.frames == "on_only" else list(range(6))
        for cid in table["id"]:
            cadence = load_cadence(root / split / cid[0] / f"{cid}.npy")
            yield cadence_to_image(cadence[frames], params.task_params.stack, params.img_size)

    def raw_sizes(self, root: Path, table: pd.DataFrame, split: str, params: Any) -> Iterator[tuple[int, int, int]]:
        """A cadence's frame (time x frequency) and its 6 frames as channels, from the .npy header."""
        for cid in table["id"]:
            shape = np.load(root / split / cid[0] / f"{cid}.npy", mmap_mode="r").shape
            yield shape[1], shape[2], shape[0]

    # ---- learning -------------------------------------------------------------------------------
    def target_kind(self, params: Any) -> str:
        return "binary"

    def loss(self, params: Any) -> torch.nn.Module:
        from ..common.losses import SmoothedBCEWithLogits

        return SmoothedBCEWithLogits(params.train.pos_weight, params.train.label_smoothing)

    def logits_to_probs(self, logits: torch.Tensor, params: Any) -> torch.Tensor:
        import torch

        return torch.sigmoid(logits.float())

    def metric(self, y_true: np.ndarray, y_pred: np.ndarray) -> float:
        from sklearn.metrics import roc_auc_score

        y = np.asarray(y_true).reshape(-1)
        if len(np.unique(y)) < 2:
            raise FoldwiseError("ROC-AUC needs both classes in the targets; this fold has one class")
        return float(roc_auc_score(y, np.asarray(y_pred).reshape(-1)))

    def oof_plot(self, y_true: np.ndarray, y_pred: np.ndarray) -> list[dict]:
        """The ROC curve: x false positive rate, y true positive rate."""
        from sklearn.metrics import roc_curve

        fpr, tpr, _ = roc_curve(np.asarray(y_true).reshape(-1).astype(int), np.asarray(y_pred).reshape(-1))
        return [{"x": float(f), "y": float(t)} for f, t in zip(fpr, tpr)]

    def check_submission(self, sub: pd.DataFrame) -> None:
        super().check_submission(sub)
        values = sub["target"].to_numpy()
        if (values < 0).any() or (values > 1).any():
            raise FoldwiseError("submission target must be probabilities in [0, 1]")



def load_cadence(path: Path) -> np.ndarray:
    """Read one cadence and check it: float16/float32 of shape (6, 273, 256), all values finite."""
    try:
        arr = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise FoldwiseError(f"{path}: missing") from None
    except (ValueError, OSError, EOFError):
        raise FoldwiseError(f"{path}: not a readable .npy file (corrupt or truncated)") from None
    if arr.shape != CADENCE_SHAPE or arr.dtype not in (np.float16, np.float32):
        raise FoldwiseError(
            f"{path}: expected float16 array of shape {CADENCE_SHAPE}, got {arr.dtype} {arr.shape}"
        )
    if not np.isfinite(arr).all():
        raise FoldwiseError(f"{path}: contains NaN or infinite values")
    return arr


def cadence_to_image(frames: np.ndarray, stack: str, img_size: int) -> np.ndarray:
    """(n, 273, 256) frames -> float32 (img_size, img_size, C) image.

    ``vertical`` stacks the frames in time into one channel (C=1); ``channels`` keeps one channel
    per frame (C=n).
    """
    frames = frames.astype(np.float32)
    if stack == "vertical":
        plane = frames.reshape(-1, frames.shape[-1])
    else:
        plane = np.ascontiguousarray(frames.transpose(1, 2, 0))  # resizing needs contiguous HWC
    image = resize_area(plane, (img_size, img_size))
    return image.reshape(img_size, img_size, -1)



TASK = SetiTask()
