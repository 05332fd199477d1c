"""SETI's simulator: synthetic cadences (noise, interference, needles) in the competition's layout."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..common.synthetic import unique_hex_ids
from .task import CADENCE_SHAPE, ON_FRAMES

POSITIVE_RATE = 0.1
ID_HEX_DIGITS = 15
SNR_MIN, SNR_MAX = 3.0, 12.0  # needle and drifting-interference peak SNR at synthetic.strength 1


def generate(root: Path, n_train: int, n_test: int, seed: int, strength: float,
             sample_submission: str = "sample_submission.csv") -> None:
    """Write ``n_train`` labelled and ``n_test`` test cadences in the Kaggle layout under ``root``
    (deterministic in seed; about 10% positives)."""
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
        root / sample_submission, index=False
    )


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

