"""OpenCV's ``INTER_AREA`` resize in plain numpy, so preprocessing runs where only numpy is installed.

The tasks resize with this rather than ``cv2.resize`` so that the same file, vendored by
``foldwise.export``, reproduces the prepared images in a Kaggle notebook without OpenCV. It follows
OpenCV's rules: when neither axis grows, each output pixel is the area-weighted mean of the input
pixels it covers; when an axis grows, OpenCV switches the whole image to its linear interpolation
with area-style coefficients, and so does this. Results match ``cv2.resize(..., INTER_AREA)`` on
float32 images to float32 rounding (the sums here run in float64).
"""
from __future__ import annotations

import numpy as np


def area_taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    """Shrinking: output cell i is the mean of input cells over [i*s, (i+1)*s), s = n_in / n_out, the
    edge cells weighted by the fraction of them inside. Returns (index, weight), each (n_out, taps)."""
    scale = n_in / n_out
    lo = np.arange(n_out)[:, None] * scale
    index = np.floor(lo).astype(int) + np.arange(int(np.ceil(scale)) + 1)
    weight = np.clip(np.minimum(lo + scale, index + 1) - np.maximum(lo, index), 0.0, None) / scale
    weight[index >= n_in] = 0.0
    return np.minimum(index, n_in - 1), weight


def linear_area_taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    """OpenCV's linear coefficients under ``INTER_AREA`` (used once any axis grows), (n_out, 2) each."""
    scale, inv = n_in / n_out, n_out / n_in
    out = np.arange(n_out)
    left = np.floor(out * scale).astype(int)
    frac = (out + 1) - (left + 1) * inv
    frac = np.where(frac <= 0, 0.0, frac - np.floor(frac))
    index = np.clip(np.stack([left, left + 1], 1), 0, n_in - 1)
    return index, np.stack([1.0 - frac, frac], 1)


def resample_axis(x: np.ndarray, taps: tuple[np.ndarray, np.ndarray], axis: int) -> np.ndarray:
    """out[i] = sum_k weight[i, k] * x[index[i, k]] along ``axis``."""
    index, weight = taps
    x = np.moveaxis(x, axis, 0)
    out = (x[index] * weight.reshape(*weight.shape, *[1] * (x.ndim - 1))).sum(axis=1)
    return np.moveaxis(out, 0, axis)


def resize_area(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(H, W) or (H, W, C) float image -> float32 (height, width[, C]) as ``cv2.resize(image,
    (width, height), interpolation=cv2.INTER_AREA)``; ``size`` is (height, width)."""
    (h, w), (height, width) = image.shape[:2], size
    taps = area_taps if height <= h and width <= w else linear_area_taps
    out = resample_axis(np.asarray(image, dtype=np.float64), taps(h, height), 0)
    return resample_axis(out, taps(w, width), 1).astype(np.float32)
