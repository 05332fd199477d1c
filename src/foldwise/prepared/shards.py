"""Prepared images as a few memory-mappable ``.npy`` shards instead of thousands of small files.

A split ``train`` is stored as ``train_000.npy``, ``train_001.npy``, ... each float16 of shape
(rows, H, W, C). Row ``i`` of the split's index table is global row ``i`` across the shards.
Images are stored channels-last so a batch is already in the memory layout that channels_last
convolutions want.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np

from ..core.errors import FoldwiseError

SHARD_BYTES = 256 * 2**20


def write_shards(out_dir: Path, split: str, images: Iterable[np.ndarray], count: int) -> tuple[int, ...]:
    """Stream ``count`` (H, W, C) images into float16 shards; peak memory is one image.

    Returns the image shape. Raises if an image's shape differs from the first one's or holds
    non-finite values.
    """
    images = iter(images)
    shape: tuple[int, ...] | None = None
    shard, rows_per_shard, written = None, 0, 0
    for i, image in enumerate(images):
        if shape is None:
            shape = tuple(image.shape)
            rows_per_shard = max(1, SHARD_BYTES // (2 * int(np.prod(shape))))
        elif tuple(image.shape) != shape:
            raise FoldwiseError(f"{split} image {i} has shape {image.shape}, expected {shape}")
        if not np.isfinite(image).all():
            raise FoldwiseError(f"{split} image {i} holds NaN or infinite values after preprocessing")
        if i % rows_per_shard == 0:
            if shard is not None:
                shard.flush()
            rows = min(rows_per_shard, count - i)
            shard = np.lib.format.open_memmap(
                out_dir / f"{split}_{i // rows_per_shard:03d}.npy", mode="w+", dtype=np.float16, shape=(rows, *shape)
            )
        shard[i % rows_per_shard] = image
        written += 1
    if shard is not None:
        shard.flush()
    if written != count:
        raise FoldwiseError(f"{split}: expected {count} images, got {written}")
    return shape or ()


class ShardReader:
    """Random access to the rows of a split's shards, memory-mapped (nothing is loaded up front)."""

    def __init__(self, prepared: Path, split: str):
        paths = sorted(prepared.glob(f"{split}_[0-9][0-9][0-9].npy"))
        if not paths:
            raise FoldwiseError(f"{prepared}: no {split} shards; run the preprocess stage")
        self.shards = [np.load(p, mmap_mode="r") for p in paths]
        self.starts = np.cumsum([0] + [len(s) for s in self.shards])

    def __len__(self) -> int:
        return int(self.starts[-1])

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.shards[0].shape[1:])

    def __getitem__(self, row: int) -> np.ndarray:
        k = int(np.searchsorted(self.starts, row, side="right")) - 1
        return self.shards[k][row - self.starts[k]]
