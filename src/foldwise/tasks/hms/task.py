"""The HMS task: the competition's layout, targets, KL loss and metric, and its submission."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np
import pandas as pd

from ...core.errors import FoldwiseError
from ..common.base import Task
from .layout import (CHAINS, CLASSES, EPS, VOTE_COLUMNS, iter_loaded, read_test_table, read_train_table,
                     spectrogram_window, window_to_image)

if TYPE_CHECKING:
    import torch

class HmsTask(Task):
    name = "hms"
    competition = "hms-harmful-brain-activity-classification"
    marker_file = "train.csv"
    metric_name = "kl"
    greater_is_better = False
    target_columns = list(VOTE_COLUMNS)
    pred_columns = list(VOTE_COLUMNS)
    # Images are (frequency, time): reversing time keeps the class, mirroring frequency would turn
    # 1-3 Hz delta into 17-19 Hz activity (it cost 0.1-0.2 KL per fold on the synthetic data).
    train_augment = [{"HorizontalFlip": {"p": 0.5}}]

    def required_files(self) -> list[str]:
        return [self.marker_file, self.sample_submission, "test.csv", "train_spectrograms", "test_spectrograms"]

    # ---- synthetic data -------------------------------------------------------------------------
    def generate(self, root: Path, n_train: int, n_test: int, seed: int, strength: float) -> None:
        from .synthetic import generate

        generate(root, n_train, n_test, seed, strength)

    # ---- reading --------------------------------------------------------------------------------
    def read_table(self, root: Path, split: str, params: Any) -> pd.DataFrame:
        if split == "test":
            return read_test_table(root)
        return read_train_table(root, params.task_params)

    def in_chans(self, params: Any) -> int:
        return len(CHAINS) if params.task_params.layout == "channels" else 1

    def iter_images(self, root: Path, table: pd.DataFrame, split: str, params: Any) -> Iterator[np.ndarray]:
        folder = root / f"{split}_spectrograms"
        # Tables come sorted by spectrogram, so each file is read once; files are read ahead in a
        # thread (parquet decoding releases the GIL) while the current one is being cut into images.
        sids = table["spectrogram_id"].astype(np.int64).to_numpy()
        paths = [folder / f"{int(sid)}.parquet" for sid in sids]
        current, logp = None, None
        files = iter_loaded(p for i, p in enumerate(paths) if i == 0 or sids[i] != sids[i - 1])
        for path, start, row_id in zip(paths, table["window_start"], table["id"]):
            if path != current:
                current, logp = next(files)
            yield window_to_image(spectrogram_window(logp, int(start), path, row_id),
                                  params.task_params.layout, params.img_size)

    def raw_sizes(self, root: Path, table: pd.DataFrame, split: str, params: Any) -> Iterator[tuple[int, int, int]]:
        """Each row's spectrogram file: 400 power columns (4 chains x 100 frequencies) by its time
        rows, from the parquet footer."""
        import pyarrow.parquet as pq

        for sid in table["spectrogram_id"].astype(np.int64):
            meta = pq.read_metadata(root / f"{split}_spectrograms" / f"{int(sid)}.parquet")
            yield meta.num_columns - 1, meta.num_rows, 1

    def class_names(self, params: Any) -> list[str]:
        return list(CLASSES)

    # ---- learning -------------------------------------------------------------------------------
    def target_kind(self, params: Any) -> str:
        return "multiclass"  # the expert consensus: argmax of the vote fractions

    def loss(self, params: Any) -> torch.nn.Module:
        from .losses import VoteKLLoss

        return VoteKLLoss(params.train.label_smoothing)

    def logits_to_probs(self, logits: torch.Tensor, params: Any) -> torch.Tensor:
        import torch

        return torch.softmax(logits.float(), dim=1)

    def metric(self, y_true: np.ndarray, y_pred: np.ndarray) -> float:
        return kaggle_kl(y_true, y_pred)

    row_error_name = "KL"

    def row_error(self, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
        return kaggle_kl_rows(y_true, y_pred)

    def oof_plot(self, y_true: np.ndarray, y_pred: np.ndarray) -> list[dict]:
        """One point per row for the confusion matrix (.dvc/plots/hms.json counts them):
        x the expert consensus (argmax of the votes), y the predicted class (argmax)."""
        names = np.array(CLASSES)
        true = names[np.argmax(np.asarray(y_true), axis=1)]
        pred = names[np.argmax(np.asarray(y_pred), axis=1)]
        return [{"x": str(t), "y": str(p)} for t, p in zip(true, pred)]

    def check_submission(self, sub: pd.DataFrame) -> None:
        super().check_submission(sub)
        values = sub[self.pred_columns].to_numpy(dtype=np.float64)
        if (values < 0).any() or (values > 1).any():
            raise FoldwiseError("submission votes must be probabilities in [0, 1]")
        sums = values.sum(axis=1)
        bad = np.flatnonzero(np.abs(sums - 1.0) > 1e-5)
        if len(bad):
            raise FoldwiseError(
                f"submission row for {sub.columns[0]} {sub.iloc[bad[0], 0]!r} sums to {sums[bad[0]]:.6f}, not 1"
            )


# ---- metric and loss ------------------------------------------------------------------------------
def kaggle_kl(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """The competition's score: the mean of ``kaggle_kl_rows``."""
    return float(kaggle_kl_rows(y_true, y_pred).mean())


def kaggle_kl_rows(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """The competition's KL divergence of each row (N,): sum_j y log(y / p).

    Targets are divided by their row sum (votes or fractions both work); only the predictions are
    clipped to [1e-15, 1 - 1e-15] and they are not renormalised; cells with y == 0 add 0.
    """
    y = np.asarray(y_true, dtype=np.float64)
    p = np.clip(np.asarray(y_pred, dtype=np.float64), EPS, 1 - EPS)
    if y.shape != p.shape or y.ndim != 2:
        raise FoldwiseError(f"KL needs targets and predictions of the same (N, 6) shape, got {y.shape} and {p.shape}")
    sums = y.sum(axis=1, keepdims=True)
    if (sums <= 0).any():
        raise FoldwiseError("KL targets hold a row with no votes")
    y = y / sums
    with np.errstate(divide="ignore", invalid="ignore"):
        cells = np.where(y > 0, y * np.log(y / p), 0.0)
    return cells.sum(axis=1)



TASK = HmsTask()
