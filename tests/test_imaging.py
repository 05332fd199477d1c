"""resize_area, the numpy INTER_AREA the tasks (and the Kaggle export) resize with, against OpenCV."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from foldwise.tasks.common.imaging import resize_area


@pytest.mark.parametrize("shape, size", [
    ((1638, 256), (64, 64)),     # SETI vertical stack, shrinking by non-integer factors
    ((273, 256, 3), (48, 48)),   # SETI on_only as channels
    ((100, 300, 4), (64, 64)),   # HMS channels layout
    ((120, 96), (60, 48)),       # integer factors (OpenCV's fast path)
    ((100, 300, 4), (128, 128)), # one axis grows: OpenCV switches to its linear rule for both axes
    ((40, 30), (97, 71)),        # both grow
    ((64, 64), (64, 64)),        # same size
])
def test_matches_opencv_inter_area(shape, size):
    image = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    expected = cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_AREA)
    got = resize_area(image, size)
    assert got.dtype == np.float32 and got.shape == (*size, *shape[2:])
    np.testing.assert_allclose(got.reshape(expected.shape), expected, atol=1e-6, rtol=0)


def test_more_than_four_channels_resize_each_channel():
    """SETI's 6 frames as channels: OpenCV's INTER_AREA refuses > 4 channels; this does each alike."""
    image = np.random.default_rng(1).standard_normal((273, 256, 6)).astype(np.float32)
    got = resize_area(image, (32, 32))
    for c in range(6):
        expected = cv2.resize(image[..., c], (32, 32), interpolation=cv2.INTER_AREA)
        np.testing.assert_allclose(got[..., c], expected, atol=1e-6, rtol=0)
