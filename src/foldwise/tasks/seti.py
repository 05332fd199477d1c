"""SETI Breakthrough Listen - E.T. Signal Search (binary, ROC-AUC).

Kaggle layout::

    train/<id[0]>/<id>.npy   float16 (6, 273, 256): cadence A B A C A D, axis 1 time, axis 2 frequency
    train_labels.csv         id,target
    test/<id[0]>/<id>.npy
    sample_submission.csv    id,target

The ON-target frames are 0, 2 and 4. A technosignature is a narrowband drifting line that is
present in the ON frames only; interference shows up in all six frames.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd
import torch

from ..core.errors import FoldwiseError
from .common.base import Task
from .common.imaging import resize_area
from .common.synthetic import unique_hex_ids
from .common.tables import read_csv_checked

CADENCE_SHAPE = (6, 273, 256)
ON_FRAMES = (0, 2, 4)
POSITIVE_RATE = 0.1
ID_HEX_DIGITS = 15
SNR_MIN, SNR_MAX = 3.0, 12.0  # needle and drifting-interference peak SNR at synthetic.strength 1


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
        ids = unique_hex_ids(np.random.default_rng((seed, 0)), n_train + n_test, ID_HEX_DIGITS)
        labels = np.random.default_rng((seed, 1)).random(n_train) < POSITIVE_RATE
        for split, split_ids, split_labels in (
            ("train", ids[:n_train], labels),
            ("test", ids[n_train:], np.random.default_rng((seed, 2)).random(n_test) < POSITIVE_RATE),
        ):
            for i, (cid, positive) in enumerate(zip(split_ids, split_labels)):
                rng = np.random.default_rng((seed, 3 if split == "train" else 4, i))
                path = root / split / cid[0] / f"{cid}.npy"
                path.parent.mkdir(parents=True, exist_ok=True)
                np.save(path, synthetic_cadence(rng, bool(positive), strength))
        pd.DataFrame({"id": ids[:n_train], "target": labels.astype(int)}).to_csv(
            root / "train_labels.csv", index=False
        )
        pd.DataFrame({"id": ids[n_train:], "target": 0.5}).to_csv(
            root / self.sample_submission, index=False
        )

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
        return SmoothedBCEWithLogits(params.train.pos_weight, params.train.label_smoothing)

    def predict(self, logits: torch.Tensor, params: Any) -> torch.Tensor:
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


class SmoothedBCEWithLogits(torch.nn.Module):
    """BCE with logits, with optional positive-class weight and label smoothing toward 0.5."""

    def __init__(self, pos_weight: float = 1.0, smoothing: float = 0.0):
        super().__init__()
        self.smoothing = smoothing
        self.bce = torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor([pos_weight]))

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        targets = targets * (1.0 - self.smoothing) + 0.5 * self.smoothing
        return self.bce(logits.float(), targets.float())


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


def synthetic_cadence(rng: np.random.Generator, positive: bool, strength: float = 1.0) -> np.ndarray:
    """One synthetic cadence, float16 (6, 273, 256), each frame normalised to mean 0 and std 1.

    Noise is chi-square with 2 degrees of freedom under a smooth bandpass shared by all six frames.
    Interference (in about 60% of cadences, positive or not) appears in all six frames: stationary
    lines, drifting lines or broadband bursts. A positive also carries a needle: a 1-3 channel wide
    line, straight or curved, with log-uniform SNR, whose path runs continuously through the
    whole cadence in time but is only visible in the ON frames 0, 2 and 4.
    """
    n_frames, n_time, n_freq = CADENCE_SHAPE
    freq = np.arange(n_freq, dtype=np.float32)
    x = freq / n_freq
    bandpass = (
        1.0
        + 0.25 * np.sin(2 * np.pi * (rng.uniform(0.5, 2.0) * x + rng.uniform()))
        + rng.uniform(-0.4, 0.4) * (x - 0.5) ** 2
    ).astype(np.float32)
    data = rng.standard_exponential(CADENCE_SHAPE, dtype=np.float32)
    data *= rng.uniform(0.8, 1.2, size=(n_frames, 1, 1)).astype(np.float32)  # per-frame gain
    time = np.arange(n_frames * n_time, dtype=np.float32).reshape(n_frames, n_time)

    if rng.random() < 0.35:  # stationary RFI: zero-drift line in every frame
        _add_line(data, time, freq, rng, drift=0.0, curve=0.0, snr=rng.uniform(SNR_MIN, SNR_MAX) * strength,
                  frames=range(n_frames))
    if rng.random() < 0.25:  # drifting RFI, in every frame: "any line means positive" fails
        _add_line(data, time, freq, rng, drift=rng.uniform(-0.08, 0.08), curve=0.0,
                  snr=_log_uniform_snr(rng) * strength, frames=range(n_frames))
    if rng.random() < 0.15:  # broadband burst: a few bright rows across the band in every frame
        rows = rng.integers(0, n_time, size=rng.integers(1, 4))
        data[:, rows, :] += rng.uniform(0.5, 2.0) * strength
    if positive:
        curve = rng.uniform(-1.5e-5, 1.5e-5) if rng.random() < 0.3 else 0.0
        _add_line(data, time, freq, rng, drift=rng.uniform(-0.08, 0.08), curve=curve,
                  snr=_log_uniform_snr(rng) * strength, frames=ON_FRAMES)

    data *= bandpass
    mean = data.mean(axis=(1, 2), keepdims=True)
    std = data.std(axis=(1, 2), keepdims=True)
    return ((data - mean) / std).astype(np.float16)


def _log_uniform_snr(rng: np.random.Generator) -> float:
    """Peak per-pixel SNR of a line, log-uniform over [SNR_MIN, SNR_MAX] (before ``strength``)."""
    return float(np.exp(rng.uniform(np.log(SNR_MIN), np.log(SNR_MAX))))


def _add_line(data, time, freq, rng, drift, curve, snr, frames) -> None:
    """Add a Gaussian-profile line whose centre follows f0 + drift*t + curve*t^2 over the cadence."""
    t_end = time.size
    span = abs(drift) * t_end + abs(curve) * t_end**2
    f0 = rng.uniform(4.0 + span, len(freq) - 4.0 - span) if span < len(freq) / 2 - 8 else len(freq) / 2
    start = f0 - (drift * t_end + curve * t_end**2) / 2  # centre the path in the band
    width = rng.uniform(1.0, 3.0)
    for k in frames:
        centre = start + drift * time[k] + curve * time[k] ** 2  # (n_time,)
        data[k] += snr * np.exp(-0.5 * ((freq[None, :] - centre[:, None]) / (width / 2)) ** 2)


TASK = SetiTask()
