"""Prepared images as people see them: the eda sample grids and the explain overlays show them alike."""
from __future__ import annotations

import numpy as np


def to_display(image: np.ndarray, rgb: bool) -> np.ndarray:
    """A prepared (H, W, C) float image -> float32 (H, W, 3) in [0, 1]: with ``rgb`` and C == 3 the
    channels as RGB, otherwise their mean in grey; stretched between the image's 1st and 99th percentile
    (a few extreme pixels, e.g. a bright interference line, do not wash out the rest)."""
    image = np.asarray(image, dtype=np.float32)
    plane = image if rgb and image.shape[-1] == 3 else image.mean(axis=-1, keepdims=True)
    lo, hi = np.percentile(plane, [1, 99])
    scaled = np.clip((plane - lo) / (hi - lo if hi > lo else 1.0), 0.0, 1.0)
    return np.broadcast_to(scaled, (*plane.shape[:2], 3)).astype(np.float32)


def to_display_bytes(image: np.ndarray, rgb: bool) -> np.ndarray:
    """``to_display`` as uint8 (H, W, 3), for saving as an image file."""
    return (to_display(image, rgb) * 255).astype(np.uint8)
